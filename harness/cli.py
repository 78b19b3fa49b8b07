"""The `gameday` command: up (serve the emulator with the stack), cleanup (undo a killed run), list."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from harness import config
from harness.errors import GamedayError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GamedayError as exc:
        print(f"gameday: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gameday", description="Verify that AWS security monitoring works.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the embedded endpoint, deploy the reference stack, serve until Ctrl-C")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    up.add_argument("--region", default=None)
    up.add_argument("--sabotage", default=None, choices=config.SABOTAGE)
    up.add_argument("--stack-prefix", default=None)
    up.set_defaults(func=_up)

    cleanup = sub.add_parser("cleanup", help="revert every fault a killed run left applied")
    cleanup.add_argument("--journal", default=None, help="journal path (default: GAMEDAY_JOURNAL or ~/.local/state)")
    cleanup.add_argument("--dry-run", action="store_true", help="list what would be reverted, change nothing")
    cleanup.set_defaults(func=_cleanup)

    listing = sub.add_parser("list", help="the scenario catalog")
    listing.add_argument("--markdown", action="store_true", help="as the README's table")
    listing.add_argument("--scenarios", default="scenarios", help="catalog folder (default scenarios)")
    listing.set_defaults(func=_list)
    return parser


def _up(args: argparse.Namespace) -> int:
    settings = config.resolve({"backend": "embedded", "region": args.region, "sabotage": args.sabotage,
                               "stack_prefix": args.stack_prefix})
    if args.port < 0 or args.port > 65535:
        raise config.ConfigError(f"port {args.port} is out of range; pick 0-65535 (0: a free port)")
    session = _start_embedded(settings, args.port)
    backend = session.backend
    print(json.dumps({"endpoint": backend.endpoint_url, "region": backend.region, "account": backend.account_id,
                      "stack": json.loads(session.stack.to_json())}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
    return 0


def _start_embedded(settings: config.Settings, port: int) -> Any:
    from harness.session import start_session

    try:
        return start_session(settings, port=port)
    except OSError as exc:
        raise config.ConfigError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); choose another --port") from None


def _cleanup(args: argparse.Namespace) -> int:
    from harness.cleanup import cleanup
    from harness.journal import Journal, default_journal_path

    journal = Journal(Path(args.journal) if args.journal else default_journal_path())
    results = cleanup(journal, dry_run=args.dry_run)
    for line in results.lines:
        print(line)
    print(f"gameday cleanup: {results.reverted} reverted, {results.abandoned} abandoned, "
          f"{results.failed} failed{' (dry run)' if args.dry_run else ''}")
    return 1 if results.failed else 0


def _list(args: argparse.Namespace) -> int:
    from harness.scenario import load_catalog, markdown_table

    folder = Path(args.scenarios)
    if not folder.is_dir():
        raise config.ConfigError(f"scenario folder {folder} does not exist; run from the repo root or pass --scenarios")
    catalog = load_catalog(folder)
    if args.markdown:
        print(markdown_table(catalog))
    else:
        for scenario, _, doc in catalog:
            print(f"{scenario.id:36} {scenario.severity:9} {', '.join(scenario.mitre):12} "
                  f"{doc.splitlines()[0] if doc else scenario.title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
