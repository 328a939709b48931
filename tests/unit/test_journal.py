"""The operations journal detects edited, deleted, reordered and forged entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vidproof.canonical import canonical_bytes
from vidproof.journal import Journal, verify_journal
from vidproof.keys import Signer, TrustedKey


@pytest.fixture
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


@pytest.fixture
def journal(tmp_path: Path, signer: Signer) -> Path:
    j = Journal(tmp_path / "journal.jsonl", signer)
    for i in range(5):
        j.append("export", f"officer-{i}", 1_800_000_000_000_000_000 + i, {"case": f"C-{i}"})
    return j.path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_intact_journal_verifies(journal: Path, signer: Signer) -> None:
    count, problems = verify_journal(journal, TrustedKey(signer.public))
    assert (count, problems) == (5, [])


def test_appends_continue_the_chain_across_instances(journal: Path, signer: Signer) -> None:
    assert Journal(journal, signer).append("view", "auditor", 1, {}) == 5
    assert verify_journal(journal, TrustedKey(signer.public)) == (6, [])


def test_edited_entry_is_detected(journal: Path, signer: Signer) -> None:
    data = lines(journal)
    entry = json.loads(data[2])
    entry["detail"]["case"] = "C-forged"
    data[2] = canonical_bytes(entry) + b"\n"
    journal.write_bytes(b"".join(data))
    _, problems = verify_journal(journal, TrustedKey(signer.public))
    assert [p.line for p in problems] == [3, 4]  # bad signature, then the next link breaks


def test_deleted_entry_is_detected(journal: Path, signer: Signer) -> None:
    data = lines(journal)
    del data[1]
    journal.write_bytes(b"".join(data))
    _, problems = verify_journal(journal, TrustedKey(signer.public))
    assert problems and problems[0].line == 2 and "seq 2 where seq 1" in problems[0].message


def test_reordered_entries_are_detected(journal: Path, signer: Signer) -> None:
    data = lines(journal)
    data[1], data[2] = data[2], data[1]
    journal.write_bytes(b"".join(data))
    _, problems = verify_journal(journal, TrustedKey(signer.public))
    assert {p.line for p in problems} >= {2, 3}


def test_other_key_is_refused(journal: Path) -> None:
    other = TrustedKey(Ed25519PrivateKey.generate().public_key())
    _, problems = verify_journal(journal, other)
    assert len(problems) == 5
