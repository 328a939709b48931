"""The operations journal (auditors)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query, Request

from ...journal import verify_journal
from ...timefmt import iso_ns
from ..api_models import JournalEntry, JournalPage
from ..auth import Session, require
from ..context import Service

router = APIRouter(prefix="/api")


@router.get("/journal", response_model=JournalPage)
def journal(request: Request, limit: int = Query(default=200, ge=1, le=5000),
            session: Session = Depends(require("auditor"))) -> JournalPage:  # noqa: B008
    svc: Service = request.app.state.service
    path = svc.journal_path
    entries: list[JournalEntry] = []
    problems: list[str] = []
    if path.exists():
        _, found = verify_journal(path, svc.trust)
        problems = [f"line {p.line}: {p.message}" for p in found]
        with open(path, "rb") as f:
            lines = f.readlines()[-limit:]
        for raw in reversed(lines):
            try:
                e = json.loads(raw)
                entries.append(JournalEntry(seq=int(e["seq"]), utc=iso_ns(int(e["utc_ns"])),
                                            actor=str(e["actor"]), action=str(e["action"]),
                                            detail=dict(e["detail"])))
            except (ValueError, KeyError, TypeError):
                continue
    svc.journal("view_journal", session.user, {})
    return JournalPage(entries=entries, verified=not problems, problems=problems)
