"""``vidproof hold add|list|release``: legal holds on a store (vidproof/retention.py).

A hold keeps a camera's footage of a time range from the retention purge. Adding and
releasing one is written to the operations journal, signed by the recorder's key.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from .retention import Hold


def add_commands(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    from .trust.commands import add_key_flags

    h = sub.add_parser("hold", help="legal holds: footage kept from the retention purge")
    hsub = h.add_subparsers(dest="hold_command", required=True, parser_class=parser_class)
    ha = hsub.add_parser("add", help="keep a camera's footage of a time range")
    ha.add_argument("--store", required=True, type=Path)
    ha.add_argument("--camera", required=True)
    ha.add_argument("--from", dest="start", required=True,
                    help="ISO 8601, e.g. 2026-11-26T14:00:00Z")
    ha.add_argument("--to", dest="end", required=True, help="ISO 8601")
    ha.add_argument("--reason", required=True, help="why (written to the journal)")
    ha.add_argument("--case", default="", help="the case or requisition it is for")
    hr = hsub.add_parser("release", help="release a hold (its footage may then be purged)")
    hr.add_argument("--store", required=True, type=Path)
    hr.add_argument("--id", dest="hold_id", required=True, help="the hold's id (hold list)")
    hr.add_argument("--reason", required=True, help="why (written to the journal)")
    for p in (ha, hr):
        p.add_argument("--by", help="who (default: the user running the command)")
        p.add_argument("--key", type=Path,
                       help="recorder key that signs the journal entry (default: the key the "
                            "store was recorded with, from STORE/recorder.json)")
        add_key_flags(p)
    hl = hsub.add_parser("list", help="list the holds of a store")
    hl.add_argument("--store", required=True, type=Path)
    hl.add_argument("--all", action="store_true", help="released holds too")
    hl.add_argument("--json", action="store_true", help="print a JSON list")


def _signer(args: argparse.Namespace) -> Any:
    """The recorder's key, which signs the journal entry: loaded before anything changes."""
    from .store import recorder_key_path
    from .trust.commands import signer_from_args

    key = args.key or recorder_key_path(args.store)
    if key is None:
        raise UsageError(f"no --key given and {args.store}/recorder.json names no recorder key")
    args.key = key
    return signer_from_args(args)


def _journal(store: Path, signer: Any, action: str, by: str, now: int,
             detail: dict[str, Any]) -> None:
    from .journal import Journal

    Journal(store / "journal.jsonl", signer).append(action, by, now, detail)


def _describe(h: Hold) -> str:
    from .retention import iso_ns

    state = ("active" if h.active else
             f"released {iso_ns(h.released_utc_ns or 0)} by {h.released_by}")
    case = f" case {h.case!r}" if h.case else ""
    return (f"{h.id}  {h.camera}  {iso_ns(h.from_utc_ns)} to {iso_ns(h.to_utc_ns)}  "
            f"{h.kind}{case}  by {h.by}: {h.reason}  ({state})")


def hold_command(args: argparse.Namespace) -> int:
    from .export import parse_time, to_ns
    from .retention import HOLDS, add_hold, load_holds, release_hold

    if args.hold_command == "list":
        if not args.store.is_dir():
            raise UsageError(f"--store {args.store} is not a directory")
        holds = [h for h in load_holds(args.store) if args.all or h.active]
        if args.json:
            print(json.dumps([h.to_json() for h in holds], indent=1, ensure_ascii=False))
        else:
            for h in holds:
                print(_describe(h))
            print(f"{len(holds)} {'holds' if args.all else 'active holds'} in "
                  f"{args.store / HOLDS}")
        return 0
    if not args.store.is_dir():
        raise UsageError(f"--store {args.store} is not a directory")
    import getpass  # here: every command's parser is built from this module

    by = args.by or getpass.getuser()
    now = time.time_ns()
    if args.hold_command == "add":
        start, end = to_ns(parse_time(args.start, "--from")), to_ns(parse_time(args.end, "--to"))
        signer = _signer(args)
        held = add_hold(args.store, args.camera, start, end, kind="legal", reason=args.reason,
                        case=args.case, by=by, now_ns=now)
        _journal(args.store, signer, "hold_add", by, now, held.to_json())
        print(f"hold {held.id} added: {_describe(held)}")
        return 0
    signer = _signer(args)
    released = release_hold(args.store, args.hold_id, by=by, reason=args.reason, now_ns=now)
    _journal(args.store, signer, "hold_release", by, now, released.to_json())
    print(f"hold {released.id} released: {_describe(released)}")
    return 0
