"""`MemoryWriter`: ledger and policy memory files, modes, patterns and rotation (real files)."""

from __future__ import annotations

import gzip
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.finished import TOKEN_HASH, finished, streamed

from tokenomics.config.settings import LedgerSettings, Settings
from tokenomics.domain.policy import MemoryPolicy
from tokenomics.services.finished import Finished
from tokenomics.services.memory import MemoryWriter
from tokenomics.services.memory_files import MIB, BadMemoryPath, archive_name
from tokenomics.services.memory_format import exchange_entries

SESSION = "a1b2c3d4"
HASH16 = TOKEN_HASH[:16]
PATTERN = "{token_hash}.md"


class Clock:
    """A settable UTC clock for the writer's `now`."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 27, 23, 59, 58, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fresh directory (the autouse `isolated` fixture fills `tmp_path` with home and work)."""
    path = tmp_path / "case"
    path.mkdir()
    return path


def entry_size(record: Finished) -> int:
    """Bytes of the policy memory entry of `record` (bodies are cut for memory)."""
    return len(exchange_entries(record, record.hash16).encode())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ledger_writer(root: Path, clock: Clock, **ledger: bool) -> MemoryWriter:
    settings = Settings(dir=str(root / "data"), ledger=LedgerSettings(**ledger))
    return MemoryWriter.from_settings(settings, home=root / "home", now=clock)


def policy_writer(root: Path, clock: Clock) -> MemoryWriter:
    return ledger_writer(root, clock, enabled=False)


def test_ledger_memory_goes_to_a_dated_session_file_created_private(root: Path) -> None:
    clock = Clock()
    writer = ledger_writer(root, clock)

    writer.write([finished(), finished(model="gpt-4o-mini")], SESSION)

    path = root / "data" / "memory" / f"2026-11-27_{SESSION}.md"
    text = path.read_text()
    assert text.count(f"| {SESSION} | request |") == 2
    assert "| gpt-4o-mini\n" in text
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(root / "data") == 0o700


def test_ledger_memory_crossing_midnight_continues_in_a_new_file(root: Path) -> None:
    clock = Clock()
    writer = ledger_writer(root, clock)
    writer.write([finished()], SESSION)
    clock.moment += timedelta(seconds=5)
    writer.write([finished()], SESSION)

    memory = root / "data" / "memory"
    assert sorted(p.name for p in memory.iterdir()) == [
        f"2026-11-27_{SESSION}.md",
        f"2026-11-28_{SESSION}.md",
    ]


def test_event_entries_only_with_the_event_ledger(root: Path) -> None:
    clock = Clock()
    ledger_writer(root / "a", clock).write([finished()], SESSION)
    ledger_writer(root / "b", clock, event_ledger=True).write([finished()], SESSION)

    name = f"data/memory/2026-11-27_{SESSION}.md"
    assert "| event |" not in (root / "a" / name).read_text()
    assert "Event: response.completed" in (root / "b" / name).read_text()


def test_no_ledger_memory_when_disabled_and_no_policy_memory(root: Path) -> None:
    writer = ledger_writer(root, Clock(), memory=False)

    writer.write([finished()], SESSION)

    assert not (root / "data").exists()
    assert not (root / "home").exists()


def test_policy_memory_defaults_to_one_file_per_token_under_home(root: Path) -> None:
    writer = policy_writer(root, Clock())

    writer.write([finished(memory=MemoryPolicy(enabled=True))], SESSION)

    path = root / "home" / ".tokenomics" / "memory" / f"{HASH16}.md"
    assert path.read_text().startswith(f"## 2026-11-27T10:00:01Z | {HASH16} | request | gpt-4o")
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(root / "home") == 0o700


def test_existing_user_directories_keep_their_mode(root: Path) -> None:
    home = root / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    writer = policy_writer(root, Clock())

    writer.write([finished(memory=MemoryPolicy(enabled=True, file_path="~/notes"))], SESSION)

    assert mode(home) == 0o755
    assert (home / "notes").is_file()


def test_file_path_without_file_name_is_one_shared_file(root: Path) -> None:
    shared = root / "shared.md"
    memory = MemoryPolicy(enabled=True, file_path=str(shared))
    other = finished(memory=memory, token_hash="feedface" * 8)

    policy_writer(root, Clock()).write([finished(memory=memory), other], SESSION)

    text = shared.read_text()
    assert f"| {HASH16} | request |" in text
    assert "| feedfacefeedface | request |" in text


def test_date_pattern_with_a_subdirectory(root: Path) -> None:
    memory = MemoryPolicy(
        enabled=True, file_path=str(root / "mem"), file_name="{date}/{session_id}.log.md"
    )

    policy_writer(root, Clock()).write([finished(memory=memory)], SESSION)

    path = root / "mem" / "2026-11-27" / f"{HASH16}.log.md"
    assert path.is_file()
    assert mode(path.parent) == 0o700


@pytest.mark.parametrize("pattern", ["../{token_hash}.md", "a/../../x.md", "/etc/{date}.md"])
def test_patterns_leaving_file_path_are_rejected(root: Path, pattern: str) -> None:
    memory = MemoryPolicy(enabled=True, file_path=str(root / "mem"), file_name=pattern)
    writer = policy_writer(root, Clock())

    with pytest.raises(BadMemoryPath):
        writer.policy_path(memory, HASH16)
    writer.write([finished(memory=memory)], SESSION)  # skipped with a warning, no crash

    assert list(root.iterdir()) == []


def test_rotation_at_the_limit_with_compression_and_twice_in_one_second(root: Path) -> None:
    clock = Clock()
    memory = MemoryPolicy(
        enabled=True, file_path=str(root / "mem"), file_name=PATTERN, compress_old=True
    )
    writer = policy_writer(root, clock)
    record = finished(memory=memory)
    active = root / "mem" / f"{HASH16}.md"
    writer.write([record], SESSION)
    one_entry = active.stat().st_size
    tiny = replace(memory, max_size_mb=1)
    big = finished(memory=tiny, request_body=b"x" * 400_000, request_bytes=400_000)
    fitting = (MIB - one_entry) // entry_size(big)  # big entries after the small one in 1 MiB

    writer.write([big] * (fitting + 1), SESSION)  # the last would pass 1 MiB: rotate before it
    writer.write([big] * (fitting + 1), SESSION)  # same second: needs a second archive name

    names = sorted(p.name for p in active.parent.iterdir())
    assert names == [
        f"{HASH16}.20261127-235958-2.md.gz",
        f"{HASH16}.20261127-235958.md.gz",
        f"{HASH16}.md",
    ]
    first = gzip.decompress((active.parent / names[1]).read_bytes()).decode()
    assert first.count("| request |") == 1 + fitting  # the small entry and the big ones
    assert len(first.encode()) > MIB - entry_size(big)
    assert active.read_text().count("| request |") >= 1
    assert all(mode(active.parent / name) == 0o600 for name in names)
    assert writer.statistics().rotations == 2


def test_rotation_without_compression_keeps_the_plain_archive(root: Path) -> None:
    clock = Clock()
    memory = MemoryPolicy(enabled=True, file_path=str(root / "m"), file_name=PATTERN, max_size_mb=1)
    big = finished(memory=memory, request_body=b"y" * 700_000, request_bytes=700_000)
    writer = policy_writer(root, clock)

    writer.write([big] * (MIB // entry_size(big)), SESSION)
    writer.write([big], SESSION)

    names = sorted(p.name for p in (root / "m").iterdir())
    assert names == [f"{HASH16}.20261127-235958.md", f"{HASH16}.md"]


def test_no_rotation_when_max_size_is_zero_and_compress_off(root: Path) -> None:
    memory = MemoryPolicy(enabled=True, file_path=str(root / "m"), file_name=PATTERN)
    big = finished(memory=memory, request_body=b"z" * 500_000, request_bytes=500_000)

    policy_writer(root, Clock()).write([big] * 3, SESSION)

    assert [p.name for p in (root / "m").iterdir()] == [f"{HASH16}.md"]


def test_archive_name_counts_past_existing_archives(root: Path) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    (root / "notes.20260102-030405.md").touch()
    (root / "notes.20260102-030405-2.md.gz").touch()

    assert archive_name(root / "notes.md", moment, True).name == "notes.20260102-030405-3.md"
    assert archive_name(root / "plain", moment, False).name == "plain.20260102-030405"


def test_rejected_requests_are_not_written(root: Path) -> None:
    record = finished(forwarded=False, status=403, memory=MemoryPolicy(enabled=True))
    writer = ledger_writer(root, Clock())

    writer.write([record], SESSION)

    assert not (root / "data" / "memory").exists()
    assert not (root / "home").exists()


def test_disk_error_is_raised_after_the_other_files_are_written(root: Path) -> None:
    blocker = root / "blocker"
    blocker.write_text("a file where a directory should be")
    broken = MemoryPolicy(enabled=True, file_path=str(blocker / "sub"), file_name="x.md")
    fine = MemoryPolicy(enabled=True, file_path=str(root / "ok.md"))
    writer = ledger_writer(root, Clock())

    with pytest.raises(OSError):
        writer.write([finished(memory=broken), streamed((), memory=fine)], SESSION)

    assert (root / "ok.md").is_file()
    assert (root / "data" / "memory" / f"2026-11-27_{SESSION}.md").is_file()
    assert writer.statistics().errors == 1


def test_closed_writer_refuses_writes(root: Path) -> None:
    writer = ledger_writer(root, Clock())
    writer.close()

    with pytest.raises(RuntimeError):
        writer.write([finished()], SESSION)


def test_redis_memory_falls_back_to_its_file_until_the_redis_backend_exists(root: Path) -> None:
    memory = MemoryPolicy(enabled=True, file_path=str(root / "r.md"), redis=True)

    policy_writer(root, Clock()).write([finished(memory=memory)], SESSION)

    assert "| request | gpt-4o" in (root / "r.md").read_text()
