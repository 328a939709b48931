"""Retention (auditors, installers): the register of destroyed footage and the holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from ...retention import HoldsError, iso_ns, load_holds, read_register
from ..auth import Session, require
from ..context import Service

router = APIRouter(prefix="/api")


class HoldView(BaseModel):
    id: str
    camera: str
    kind: str
    start: str
    end: str
    reason: str
    case: str
    by: str
    created_utc: str
    released_utc: str | None
    released_by: str | None
    release_reason: str | None


class RetentionPage(BaseModel):
    retention_days: float
    # Newest first; fields: docs/FORMAT.md section 15.5. ("register" is a BaseModel name.)
    destroyed: list[dict[str, Any]] = Field(serialization_alias="register")
    holds: list[HoldView]
    holds_problem: str | None  # holds.json cannot be read: nothing is purged meanwhile


@router.get("/retention", response_model=RetentionPage)
def retention(request: Request, limit: int = Query(default=500, ge=1, le=20000),
              session: Session = Depends(require("auditor", "installer"))  # noqa: B008
              ) -> RetentionPage:
    """The register of destroyed segments (decree of 3 August 2007) and the holds."""
    svc: Service = request.app.state.service
    store = svc.config.store
    problem = None
    try:
        holds = load_holds(store)
    except HoldsError as exc:
        holds, problem = [], str(exc)
    views = [HoldView(id=h.id, camera=h.camera, kind=h.kind, start=iso_ns(h.from_utc_ns),
                      end=iso_ns(h.to_utc_ns), reason=h.reason, case=h.case, by=h.by,
                      created_utc=iso_ns(h.created_utc_ns),
                      released_utc=(None if h.released_utc_ns is None
                                    else iso_ns(h.released_utc_ns)),
                      released_by=h.released_by, release_reason=h.release_reason)
             for h in holds]
    register = list(reversed(read_register(store, limit)))
    svc.journal("view_retention", session.user, {})
    return RetentionPage(retention_days=svc.config.retention_days, destroyed=register,
                         holds=views, holds_problem=problem)
