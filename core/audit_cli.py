"""``python -m core audit [list] | verify | head | export``: the audit trail from the command line.

``audit`` alone (or ``audit list``) prints one JSON object per row, oldest of the newest ``--limit`` first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.studio import Studio

EXIT_TAMPERED = 1


def _print(value: Any) -> None:
    print(json.dumps(value), flush=True)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    from core.audit_trail import parse_when

    return {"actor": args.actor, "action": args.action, "since": parse_when(args.since),
            "until": parse_when(args.until, end=True)}


def cmd_list(studio: Studio, args: argparse.Namespace) -> int:
    from core.audit import audit_log

    for row in reversed(audit_log(studio, args.tool, args.limit, **_filters(args))):
        _print(row.as_dict())
    return 0


def cmd_verify(studio: Studio, args: argparse.Namespace) -> int:
    from core.audit_trail import Anchor, verify

    report = verify(studio, Anchor.parse(args.expect) if args.expect else None)
    if not args.json:
        for problem in report.problems:
            print(f"{problem.kind}: {problem.message}", flush=True)
        if report.more:
            print(f"... and {report.more} more problem(s)", flush=True)
        print(report.summary(), flush=True)
    _print(report.as_dict())
    return 0 if report.ok else EXIT_TAMPERED


def cmd_head(studio: Studio, args: argparse.Namespace) -> int:
    from core.audit_trail import chain_head

    head = chain_head(studio)
    print(f"record this outside the studio; later `python -m core audit verify --expect {head}` proves that no "
          "row up to it was changed or removed", file=sys.stderr)
    _print({"seq": head.seq, "hash": head.hash, "expect": str(head)})
    return 0


def cmd_export(studio: Studio, args: argparse.Namespace) -> int:
    from core.audit import audit_log
    from core.audit_trail import write_csv

    rows = list(reversed(audit_log(studio, args.tool, limit=None, **_filters(args))))
    with Path(args.csv).open("w", encoding="utf-8", newline="") as out:
        _print({"csv": args.csv, "rows": write_csv(rows, out)})
    return 0


def _add_filters(parser: argparse.ArgumentParser, limit: bool) -> argparse.ArgumentParser:
    parser.add_argument("--tool", help="only this tool's rows")
    parser.add_argument("--actor", "--who", dest="actor", help="only this person's rows")
    parser.add_argument("--action", help="only this action (e.g. promote, settings, verdict)")
    parser.add_argument("--since", help="from this UTC date or time (YYYY-MM-DD[THH:MM])")
    parser.add_argument("--until", help="before this UTC time; a date alone includes that day")
    if limit:
        parser.add_argument("--limit", type=int, default=100, help="at most this many of the newest rows")
    return parser


def add_audit_commands(commands: Any) -> None:
    """Register ``audit`` and its sub-commands on the main parser's sub-commands."""
    audit = _add_filters(commands.add_parser("audit", help="the tamper-evident audit trail: list (default), "
                                                           "verify, head, export"), limit=True)
    audit.set_defaults(func=cmd_list)
    actions = audit.add_subparsers(dest="audit_action")
    _add_filters(actions.add_parser("list", help="rows as JSON lines, oldest of the newest --limit first"),
                 limit=True).set_defaults(func=cmd_list)
    verifying = actions.add_parser("verify", help="walk the hash chain: exit 1 and say which row if it was edited, "
                                                  "deleted or inserted; last line JSON")
    verifying.add_argument("--json", action="store_true", help="only the JSON report")
    verifying.add_argument("--expect", metavar="SEQ:HASH", help="a head recorded earlier with `audit head`")
    verifying.set_defaults(func=cmd_verify)
    actions.add_parser("head", help="the newest position and hash, to record outside the studio").set_defaults(
        func=cmd_head)
    exporting = _add_filters(actions.add_parser("export", help="the (filtered) trail as CSV, oldest first"),
                             limit=False)
    exporting.add_argument("--csv", required=True, metavar="FILE")
    exporting.set_defaults(func=cmd_export)
