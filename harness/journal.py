"""Crash-safe, append-only fault journal that lets `gameday cleanup` undo a killed run."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

STATES = frozenset({"applied", "reverted", "revert_failed", "abandoned"})
CLOSED_STATES = frozenset({"reverted", "abandoned"})


def default_journal_path() -> Path:
    """$GAMEDAY_JOURNAL, else $XDG_STATE_HOME (default ~/.local/state)/gameday/journal.jsonl."""
    explicit = os.environ.get("GAMEDAY_JOURNAL")
    if explicit:
        return Path(explicit).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "gameday" / "journal.jsonl"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _encode(obj: object) -> str:
    """Snapshots hold boto3 datetimes; anything else unserialisable fails before the fault runs."""
    def default(value: object) -> object:
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"journal cannot store {type(value).__name__}: {value!r}")
    return json.dumps(obj, default=default, separators=(",", ":"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """JSON-lines file of fault entries ("begin" lines) and their state changes ("mark" lines)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def begin(self, *, run_id: str, fault: str, params: dict, snapshot: dict | None, backend: dict) -> str:
        """Record a fault about to be applied; returns its entry id."""
        entry_id = uuid.uuid4().hex
        self._append({
            "id": entry_id, "run_id": run_id, "fault": fault, "params": params,
            "snapshot": snapshot, "backend": backend, "state": "applying", "at": _now(),
        })
        return entry_id

    def mark(self, entry_id: str, state: str, detail: str | None = None) -> None:
        """Record a state change of an entry: applied, reverted, revert_failed or abandoned."""
        if state not in STATES:
            raise ValueError(f"journal state must be one of {sorted(STATES)}, got {state!r}")
        self._append({"id": entry_id, "state": state, "at": _now(), "detail": detail})

    def open_entries(self) -> list[dict]:
        """Entries not yet reverted or abandoned, oldest first, each with its latest state."""
        # No lock: appends are single writes and compaction is an atomic replace.
        return self._fold()

    def compact(self) -> None:
        """Atomically rewrite the file with only the open entries."""
        with self._locked():
            entries = self._fold()
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(_encode(entry) + "\n" for entry in entries)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, so no append lands in a file that compact is replacing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _append(self, record: dict) -> None:
        line = (_encode(record) + "\n").encode("utf-8")
        with self._locked():
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                # A line cut short by a crash must not swallow the next record.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(f"short write to journal {self.path}: {written} of {len(line)} bytes")
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)

    def _records(self) -> Iterator[dict]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                # The final line may be cut short by a crash mid-write; anything else is worth a warning.
                if number != len(lines):
                    log.warning("journal %s line %d is not JSON; skipped", self.path, number)
                continue
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                yield record

    def _fold(self) -> list[dict]:
        entries: dict[str, dict] = {}
        for record in self._records():
            if "fault" in record:
                entries.setdefault(record["id"], dict(record))
            elif record["id"] in entries:
                entries[record["id"]].update(
                    state=record.get("state"), state_at=record.get("at"), detail=record.get("detail"),
                )
        return [entry for entry in entries.values() if entry.get("state") not in CLOSED_STATES]
