"""The studio's command line: ``python -m core <command>``. JSON on stdout, progress on stderr."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from core.errors import StudioError, TrainingCancelledError
from core.studio import Studio, open_studio

EXIT_ERROR = 1
EXIT_CANCELLED = 130


def _print_json(value: Any) -> None:
    print(json.dumps(value), flush=True)


def _progress_printer(prefix: str) -> Any:
    last: dict[str, int] = {}

    def show(stage: str, fraction: float) -> None:
        percent = int(fraction * 10) * 10  # every 10 %
        if last.get(stage) != percent:
            last[stage] = percent
            print(f"{prefix}{stage}: {percent}%", file=sys.stderr, flush=True)

    return show


def cmd_tools_create(studio: Studio, args: argparse.Namespace) -> int:
    from core.tools import create_tool

    _print_json(create_tool(studio, args.name, args.classes).as_dict())
    return 0


def cmd_tools_list(studio: Studio, args: argparse.Namespace) -> int:
    from core.tools import list_tools

    tools = [tool.as_dict() for tool in list_tools(studio)]
    if args.format == "json":
        _print_json(tools)
    else:
        for tool in tools:
            print(f"{tool['name']}\t{','.join(tool['classes'])}\tactive model: {tool['active_model_id']}")
    return 0


def cmd_samples_import(studio: Studio, args: argparse.Namespace) -> int:
    from core.samples import import_path

    show = _progress_printer("import ")
    report = import_path(studio, args.tool, Path(args.path), args.label,
                         progress=lambda done, total: show("files", done / total))
    print(f"imported: {report.imported}", flush=True)
    print(f"skipped duplicates: {report.duplicates}", flush=True)
    print(f"rejected: {len(report.rejected)}", flush=True)
    for name, reason in report.rejected:
        print(f"rejected {name}: {reason}", flush=True)
    return 0 if report.imported or report.duplicates else EXIT_ERROR


def cmd_train(studio: Studio, args: argparse.Namespace) -> int:
    from core.training import train

    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    result = train(studio, args.tool, kind=args.kind, profile=args.profile, seed=args.seed,
                   progress=_progress_printer("train "), cancel=cancel)
    for name, reason in result.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    _print_json(result.as_dict())
    return 0


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def cmd_predict(studio: Studio, args: argparse.Namespace) -> int:
    from core.inference import predict_files

    results = predict_files(studio, args.tool, [(p, _read(p)) for p in args.paths],
                            record=not args.no_record, station=args.station)
    for result in results:
        _print_json(result)
    return 0 if any("error" not in r for r in results) else EXIT_ERROR


def cmd_demo_build(studio: Studio, args: argparse.Namespace) -> int:
    from core.demo import DEMO_TOOL, build_demo
    from core.tools import list_tools

    if args.if_empty and list_tools(studio):
        _print_json({"message": "the studio has tools already; demo not built"})
        return 0
    summary = build_demo(studio, progress=_progress_printer("demo "))
    _print_json(summary or {"message": f"the demo tool {DEMO_TOOL!r} exists already"})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Visual inspection studio, command line.")
    commands = parser.add_subparsers(dest="command", required=True)

    tools = commands.add_parser("tools", help="create and list inspection tools").add_subparsers(dest="action", required=True)
    create = tools.add_parser("create", help="create a tool")
    create.add_argument("name")
    create.add_argument("--classes", required=True, help="comma-separated classes; must include 'good'")
    create.set_defaults(func=cmd_tools_create)
    listing = tools.add_parser("list", help="list tools")
    listing.add_argument("--format", choices=["json", "text"], default="text")
    listing.set_defaults(func=cmd_tools_list)

    samples = commands.add_parser("samples", help="manage a tool's samples").add_subparsers(dest="action", required=True)
    importing = samples.add_parser("import", help="import a folder (one sub-folder per class), a flat folder with --label, or a .zip")
    importing.add_argument("path")
    importing.add_argument("--tool", required=True)
    importing.add_argument("--label", help="label of every file (for a flat folder)")
    importing.set_defaults(func=cmd_samples_import)

    training = commands.add_parser("train", help="train a model on a tool's samples and make it active")
    training.add_argument("--tool", required=True)
    training.add_argument("--kind", default="classifier", choices=["classifier", "anomaly"],
                          help="anomaly: learns from the good images only")
    training.add_argument("--profile", default="fast", choices=["fast", "balanced", "accurate"])
    training.add_argument("--seed", type=int, default=0)
    training.set_defaults(func=cmd_train)

    predicting = commands.add_parser("predict", help="inspect images with a tool's active model")
    predicting.add_argument("--tool", required=True)
    predicting.add_argument("paths", nargs="+", metavar="PATH")
    predicting.add_argument("--no-record", action="store_true", help="do not record inspections")
    predicting.add_argument("--station", default="cli")
    predicting.set_defaults(func=cmd_predict)

    demo = commands.add_parser("demo", help="the demo project").add_subparsers(dest="action", required=True)
    demo_build = demo.add_parser("build", help="build the demo tool from the ELPV dataset")
    demo_build.add_argument("--if-empty", action="store_true", help="only when the studio has no tool yet")
    demo_build.set_defaults(func=cmd_demo_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(open_studio(), args)
    except TrainingCancelledError as error:
        print(f"cancelled: {error}", file=sys.stderr)
        return EXIT_CANCELLED
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
