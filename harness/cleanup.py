"""`gameday cleanup`: revert every fault a killed run left applied, using the journal."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from harness import backends
from harness.backends.embedded import AttachedEmbedded
from harness.config import Settings
from harness.faults import rebuild
from harness.journal import Journal


@dataclass
class CleanupResult:
    reverted: int = 0
    abandoned: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)


def cleanup(journal: Journal, *, dry_run: bool = False) -> CleanupResult:
    result = CleanupResult()
    for entry in journal.open_entries():
        where = entry["backend"]
        label = f"{entry['fault']} {json.dumps(entry['params'])} on {where['name']} ({where.get('endpoint') or where.get('account')})"
        if where["name"] == "embedded" and not _alive(where.get("endpoint")):
            # The emulator's state lived in the killed process: nothing of the fault survives it.
            result.abandoned += 1
            result.lines.append(f"abandoned  {label}: its embedded endpoint is gone, and its state with it")
            if not dry_run:
                journal.mark(entry["id"], "abandoned", "embedded endpoint no longer running")
            continue
        if dry_run:
            result.lines.append(f"would revert {label}")
            continue
        try:
            backend = _reach(where)
            try:
                rebuild(entry["fault"], entry["params"]).revert(backend, entry.get("snapshot"))
            finally:
                backend.stop()
        except Exception as exc:  # one stuck entry must not stop the others; it stays open for the next try
            result.failed += 1
            result.lines.append(f"FAILED     {label}: {type(exc).__name__}: {exc}")
            journal.mark(entry["id"], "revert_failed", f"{type(exc).__name__}: {exc}")
            continue
        result.reverted += 1
        result.lines.append(f"reverted   {label}")
        journal.mark(entry["id"], "reverted", "gameday cleanup")
    if not dry_run:
        journal.compact()
    return result


def _reach(where: dict):
    settings = Settings(backend=where["name"], endpoint=where.get("endpoint"), region=where["region"],
                        profile=where.get("profile"),
                        # Only the account the fault was applied to may be touched to revert it.
                        allowed_accounts=(where["account"],) if where["name"] == "aws" else ())
    backend = AttachedEmbedded(settings, where["endpoint"]) if where["name"] == "embedded" else backends.create(settings)
    backend.start()
    return backend


def _alive(endpoint: str | None) -> bool:
    if not endpoint:
        return False
    try:
        with urllib.request.urlopen(f"{endpoint}/_gameday/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False
