"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    token: str
    role: str


class Health(BaseModel):
    status: str
    cameras: int
    recording: int


class CameraStatus(BaseModel):
    camera_id: str
    location: dict[str, str]
    close_shot: bool
    mode: str
    state: str
    worker_pid: int | None
    restarts: int
    last_error: str
    frames_in: int
    frames_out: int
    dropped_frames: int
    last_frame_utc: str | None
    clock_offset_ms: float | None
    stream: dict[str, Any] | None
    disk_used_bytes: int
    disk_free_bytes: int
    seconds_left: float | None


class Range(BaseModel):
    start: str
    end: str
    frames: int


class Recordings(BaseModel):
    camera_id: str
    ranges: list[Range]
    gaps: list[Range]


class ExportRequestBody(BaseModel):
    camera: str = Field(min_length=1, max_length=64)
    start: str = Field(alias="from", min_length=1, max_length=64)
    end: str = Field(alias="to", min_length=1, max_length=64)
    case: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)

    model_config = {"populate_by_name": True}


class ExportStatus(BaseModel):
    id: str
    state: str
    progress: float
    camera: str
    case: str
    officer: str
    created_utc: str
    message: str = ""
    frames: int | None = None
    verdict: str | None = None


class JournalEntry(BaseModel):
    seq: int
    utc: str | None
    actor: str
    action: str
    detail: dict[str, Any]


class JournalPage(BaseModel):
    entries: list[JournalEntry]
    verified: bool
    problems: list[str]
