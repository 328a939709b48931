"""Verification of an uploaded bundle against this recorder's key."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, UploadFile

from ...errors import CouldNotVerify, UsageError
from ...verify.bundle import inspect_bundle
from ...verify.report import report_json
from ..auth import Session, require
from ..context import Service

router = APIRouter(prefix="/api")
MAX_UPLOAD = 4 << 30


@router.post("/verify")
def verify_upload(file: UploadFile, request: Request,
                  session: Session = Depends(require())) -> dict[str, Any]:  # noqa: B008
    svc: Service = request.app.state.service
    with tempfile.TemporaryDirectory(prefix="vidproof-upload-") as tmp:
        path = Path(tmp) / "bundle.zip"
        size = 0
        with open(path, "wb") as out:
            while block := file.file.read(1 << 20):
                size += len(block)
                if size > MAX_UPLOAD:
                    raise HTTPException(413, f"upload larger than {MAX_UPLOAD} bytes")
                out.write(block)
        try:
            report = inspect_bundle(path, svc.bundle_trust)
        except (CouldNotVerify, UsageError) as exc:
            # Name the upload, not the server's temporary copy of it.
            message = str(exc).replace(str(path), repr(file.filename or "the upload"))
            raise HTTPException(422, f"could not verify: {message}") from None
        result = report_json(report)
    svc.journal("verify", session.user, {"file": file.filename or "", "bytes": size,
                                          "verdict": result["verdict"]})
    return result
