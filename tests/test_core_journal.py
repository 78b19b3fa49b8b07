"""Tests for the crash-safe fault journal."""
import json
import multiprocessing
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import harness.journal as journal_module
from harness.journal import Journal, default_journal_path

REPO = Path(__file__).resolve().parents[1]


def begin(journal: Journal, fault: str = "cloudtrail.stop_logging", **params) -> str:
    return journal.begin(
        run_id="run-1", fault=fault, params=params or {"trail": "gameday-trail"},
        snapshot={"IsLogging": True}, backend={"name": "embedded", "endpoint": "http://127.0.0.1:5000"},
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_an_entry_begun_but_never_marked_is_open(tmp_path):
    journal = Journal(tmp_path / "deep" / "dir" / "journal.jsonl")
    entry_id = begin(journal)
    [entry] = journal.open_entries()
    assert entry["id"] == entry_id and len(entry_id) == 32
    assert entry["state"] == "applying"
    assert entry["fault"] == "cloudtrail.stop_logging"
    assert entry["params"] == {"trail": "gameday-trail"}
    assert entry["snapshot"] == {"IsLogging": True}
    assert entry["backend"]["name"] == "embedded"
    assert entry["run_id"] == "run-1"
    assert datetime.fromisoformat(entry["at"]).tzinfo is not None


def test_marks_fold_into_the_latest_state(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    reverted, abandoned, failed, applied = (begin(journal, f"fault.{n}") for n in range(4))
    for entry_id in (reverted, abandoned, failed, applied):
        journal.mark(entry_id, "applied")
    journal.mark(reverted, "reverted")
    journal.mark(abandoned, "abandoned", "operator gave up")
    journal.mark(failed, "revert_failed", "AccessDenied on StartLogging")
    open_entries = journal.open_entries()
    assert [e["id"] for e in open_entries] == [failed, applied]
    assert open_entries[0]["state"] == "revert_failed"
    assert open_entries[0]["detail"] == "AccessDenied on StartLogging"
    assert open_entries[1]["state"] == "applied"
    assert len(lines(journal.path)) == 11


def test_mark_rejects_unknown_states(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(ValueError, match="applied"):
        journal.mark(begin(journal), "applying")


def test_every_write_is_fsynced(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    journal = Journal(tmp_path / "journal.jsonl")
    entry_id = begin(journal)
    after_begin = len(synced)
    journal.mark(entry_id, "applied")
    assert after_begin >= 1
    assert len(synced) > after_begin


def test_a_truncated_final_line_is_ignored_and_does_not_eat_the_next_entry(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    survivor = begin(journal)
    with open(journal.path, "ab") as fh:
        fh.write(b'{"id": "dead", "run_id": "run-1", "fault": "sns.unsub')
    assert [e["id"] for e in journal.open_entries()] == [survivor]
    later = begin(journal, "sns.unsubscribe")
    assert [e["id"] for e in journal.open_entries()] == [survivor, later]


def test_a_corrupt_middle_line_is_skipped(tmp_path, caplog):
    journal = Journal(tmp_path / "journal.jsonl")
    first = begin(journal)
    with open(journal.path, "ab") as fh:
        fh.write(b"not json\n")
    second = begin(journal)
    assert [e["id"] for e in journal.open_entries()] == [first, second]
    assert "line 2" in caplog.text


def test_a_missing_file_has_no_open_entries(tmp_path):
    journal = Journal(tmp_path / "nowhere" / "journal.jsonl")
    assert journal.open_entries() == []
    assert not journal.path.parent.exists()


def test_compact_keeps_only_open_entries(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    done, stuck, fresh = begin(journal, "a"), begin(journal, "b"), begin(journal, "c")
    journal.mark(done, "applied")
    journal.mark(done, "reverted")
    journal.mark(stuck, "revert_failed", "throttled")
    before = journal.open_entries()
    journal.compact()
    assert len(lines(journal.path)) == 2
    assert journal.open_entries() == before
    assert [e["id"] for e in before] == [stuck, fresh]
    journal.mark(stuck, "reverted")
    assert [e["id"] for e in journal.open_entries()] == [fresh]
    assert not list(tmp_path.glob("*.tmp"))


def test_snapshots_with_datetimes_are_stored_and_junk_is_refused_before_writing(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    journal.begin(run_id="r", fault="f", params={}, snapshot={"StartLoggingTime": when}, backend={})
    assert journal.open_entries()[0]["snapshot"] == {"StartLoggingTime": when.isoformat()}
    with pytest.raises(TypeError, match="object"):
        journal.begin(run_id="r", fault="f", params={"x": object()}, snapshot=None, backend={})
    assert len(lines(journal.path)) == 1


def test_an_entry_survives_kill_9_right_after_begin(tmp_path):
    path = tmp_path / "journal.jsonl"
    script = (
        "import os, signal, sys\n"
        "from harness.journal import Journal\n"
        "entry = Journal(sys.argv[1]).begin(run_id='r', fault='ec2.open_ssh', params={'sg': 'sg-1'},"
        " snapshot=None, backend={})\n"
        "print(entry, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == -9
    assert [e["id"] for e in Journal(path).open_entries()] == [done.stdout.strip()]


def _append_many(path: str, worker: int, count: int, go) -> None:
    go.wait()
    journal = Journal(Path(path))
    for n in range(count):
        entry_id = journal.begin(
            run_id=f"w{worker}", fault="cloudwatch.delete_alarms", params={"n": n, "pad": "x" * 8000},
            snapshot={"alarms": [f"alarm-{i}" for i in range(50)]}, backend={"worker": worker},
        )
        journal.mark(entry_id, "applied")


def test_concurrent_appenders_write_only_whole_lines(tmp_path):
    path = tmp_path / "journal.jsonl"
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    workers = [ctx.Process(target=_append_many, args=(str(path), w, 60, go)) for w in range(3)]
    for process in workers:
        process.start()
    go.set()
    for process in workers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    records = [json.loads(line) for line in lines(path)]
    assert len(records) == 3 * 60 * 2
    entries = Journal(path).open_entries()
    assert len(entries) == 180
    assert {e["state"] for e in entries} == {"applied"}
    assert sorted(e["params"]["n"] for e in entries if e["run_id"] == "w1") == list(range(60))


def test_compact_during_concurrent_appends_loses_nothing(tmp_path):
    path = tmp_path / "journal.jsonl"
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    workers = [ctx.Process(target=_append_many, args=(str(path), w, 40, go)) for w in range(2)]
    for process in workers:
        process.start()
    go.set()
    journal = Journal(path)
    while any(p.is_alive() for p in workers):
        journal.compact()
    for process in workers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers] == [0, 0]
    assert len(journal.open_entries()) == 80


def test_default_path_prefers_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GAMEDAY_JOURNAL", str(tmp_path / "j.jsonl"))
    assert default_journal_path() == tmp_path / "j.jsonl"


def test_default_path_respects_xdg_state_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GAMEDAY_JOURNAL", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_journal_path() == tmp_path / "state" / "gameday" / "journal.jsonl"


def test_default_path_falls_back_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GAMEDAY_JOURNAL", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_journal_path() == tmp_path / ".local" / "state" / "gameday" / "journal.jsonl"
