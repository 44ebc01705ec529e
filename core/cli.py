"""The studio's command line: ``python -m core <command>``. JSON on stdout, progress on stderr."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from core.api.cli import add_api_commands
from core.audit_cli import add_audit_commands
from core.auth.cli import add_identity_arguments, add_users_commands, cli_actor, signature_password
from core.bundle.cli import add_bundle_commands
from core.errors import StudioError, TrainingCancelledError
from core.line.cli import add_line_commands
from core.operating_point.cli import add_operating_point_command
from core.studio import Studio, open_studio
from models.profiles import DEFAULT_PROFILE, PROFILES, TILED_PROFILE
from models.registry import DEFAULT_METHOD, method_names

EXIT_ERROR = 1
EXIT_CANCELLED = 130


def _who(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--user`` (alias ``--reviewer``), ``--token`` and ``--device`` of a command that acts as a user."""
    return add_identity_arguments(parser)


def _actor(studio: Studio, args: argparse.Namespace) -> Any:
    """The command's authenticated actor (core.auth.cli.cli_actor)."""
    return cli_actor(studio, args)


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


def cmd_models_export_onnx(studio: Studio, args: argparse.Namespace) -> int:
    from core.onnx_export import export_tool

    for sidecar in export_tool(studio, args.tool, Path(args.out)):
        _print_json(sidecar)
    return 0


def cmd_tools_create(studio: Studio, args: argparse.Namespace) -> int:
    from core.tools import create_tool

    _print_json(create_tool(studio, args.name, args.classes, _actor(studio, args)).as_dict())
    return 0


def cmd_tools_list(studio: Studio, args: argparse.Namespace) -> int:
    from core.tools import list_tools

    tools = [tool.as_dict() for tool in list_tools(studio)]
    if args.format == "json":
        _print_json(tools)
    else:
        for tool in tools:
            active = ", ".join(f"{m} v{v}" for m, v in tool["active_versions"].items()) or "none"
            print(f"{tool['name']}\t{','.join(tool['classes'])}\tactive models: {active}")
    return 0


def cmd_tools_show(studio: Studio, args: argparse.Namespace) -> int:
    from core.inspect.models import describe_tool

    _print_json(describe_tool(studio, args.tool))
    return 0


def cmd_tools_set(studio: Studio, args: argparse.Namespace) -> int:
    from core.errors import InvalidInputError
    from core.tool_settings import change_settings

    changes: dict[str, Any] = {}
    for item in args.changes:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidInputError(f"{item!r}: write NAME=VALUE, e.g. threshold.classifier=0.4")
        changes[name.strip()] = None if value.strip().lower() in ("", "default", "calibrated") else value.strip()
    actor = _actor(studio, args)
    signed = any(name.split(".")[0] in ("threshold", "policy", "operating_point", "review") for name in changes)
    _print_json(change_settings(studio, args.tool, actor, changes,
                                signature_password(actor) if signed else None).to_json())
    return 0


def cmd_tools_roi(studio: Studio, args: argparse.Namespace) -> int:
    from core.errors import InvalidInputError
    from core.tools import set_roi

    box = None
    if args.box.lower() != "none":
        try:
            box = [float(v) for v in args.box.split(",")]
        except ValueError:
            raise InvalidInputError(
                "the region is x0,y0,x1,y1 in fractions of the frame, e.g. 0.1,0.1,0.9,0.9") from None
    frame = None
    if args.frame:
        try:
            frame = tuple(int(v) for v in args.frame.lower().split("x"))
        except ValueError:
            raise InvalidInputError("the frame is WIDTHxHEIGHT, e.g. 640x480") from None
    _print_json({"roi": set_roi(studio, args.tool, box, _actor(studio, args), frame)})
    return 0


def cmd_tools_classes(studio: Studio, args: argparse.Namespace) -> int:
    from core.tools import set_classes

    _print_json(set_classes(studio, args.tool, args.classes, _actor(studio, args)).as_dict())
    return 0


def cmd_samples_import(studio: Studio, args: argparse.Namespace) -> int:
    from core.mvtec import import_mvtec, is_mvtec_folder
    from core.samples import import_path

    show = _progress_printer("import ")
    cancel = _cancel_on_signals()
    progress = lambda done, total: show("files", done / total)  # noqa: E731
    path = Path(args.path)
    actor = _actor(studio, args)
    if args.layout == "mvtec" or (args.layout == "auto" and path.is_dir() and is_mvtec_folder(path)):
        report = import_mvtec(studio, args.tool, path, test_split=args.test_split, progress=progress, cancel=cancel,
                              actor=actor)
    else:
        report = import_path(studio, args.tool, path, args.label, progress=progress, cancel=cancel, actor=actor)
    print(f"imported: {report.imported}", flush=True)
    print(f"skipped duplicates: {report.duplicates}", flush=True)
    print(f"rejected: {len(report.rejected)}", flush=True)
    for name, reason in report.rejected:
        print(f"rejected {name}: {reason}", flush=True)
    for name, similar in report.near_duplicates:
        print(f"near-duplicate {name}: looks like sample {similar}", flush=True)
    if report.cancelled:
        print("cancelled: the files imported so far are kept", file=sys.stderr, flush=True)
        return EXIT_CANCELLED
    return 0 if report.imported or report.duplicates else EXIT_ERROR


def cmd_train(studio: Studio, args: argparse.Namespace) -> int:
    from core.training import tiling_cost, train

    cost = tiling_cost(studio, args.tool, args.method, args.profile)
    if cost is not None:
        print(f"tiling ({cost['mode']}): {cost['tiles']} tiles of {cost['tile_px']} px (overlap {cost['overlap']}) on "
              f"{cost['roi'][0]} x {cost['roi'][1]} px, about {cost['mb']} MB and {cost['ms']:.0f} ms per part",
              file=sys.stderr, flush=True)
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    result = train(studio, args.tool, args.method, profile=args.profile, seed=args.seed,
                   progress=_progress_printer("train "), cancel=cancel, activate=not args.candidate,
                   actor=_actor(studio, args))
    for name, reason in result.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    _print_json(result.as_dict())
    return 0


def _read(path: str) -> bytes | None:
    """At most one byte past the image size limit (the decoder refuses it then); None when unreadable
    or not a regular file (a FIFO would block)."""
    from core.samples import read_limited

    try:
        if not Path(path).is_file():
            return None
        return read_limited(Path(path))
    except OSError:
        return None


def cmd_predict(studio: Studio, args: argparse.Namespace) -> int:
    from core.inspect.recorder import RecordContext
    from core.inspect.service import predict_files

    results = predict_files(studio, args.tool, [(p, _read(p)) for p in args.paths], record=not args.no_record,
                            roi=args.roi, context=RecordContext(station=args.station),
                            actor=_actor(studio, args))
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


def cmd_analytics_export(studio: Studio, args: argparse.Namespace) -> int:
    from datetime import date

    from core.analytics.export import write_csv
    from core.analytics.filters import AnalyticsFilter

    flt = AnalyticsFilter(args.tool, date.fromisoformat(args.start), date.fromisoformat(args.end),
                          station=args.station, model_version_id=args.version, shift=args.shift)
    if args.out == "-":
        write_csv(studio, flt, sys.stdout)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as out:
            write_csv(studio, flt, out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Visual inspection studio, command line.")
    commands = parser.add_subparsers(dest="command", required=True)

    tools = commands.add_parser("tools", help="create, list and configure inspection tools").add_subparsers(
        dest="action", required=True)
    create = _who(tools.add_parser("create", help="create a tool"))
    create.add_argument("name")
    create.add_argument("--classes", required=True, help="comma-separated classes; must include 'good'")
    create.set_defaults(func=cmd_tools_create)
    listing = tools.add_parser("list", help="list tools")
    listing.add_argument("--format", choices=["json", "text"], default="text")
    listing.set_defaults(func=cmd_tools_list)
    showing = tools.add_parser("show", help="a tool's settings, ROI and the models that decide, with their thresholds")
    showing.add_argument("tool")
    showing.set_defaults(func=cmd_tools_show)
    setting = _who(tools.add_parser("set", help="change tool settings (audited), e.g. threshold.classifier=0.4",
                                    description="Settings: policy (cross-check | <method> only), threshold.<method> "
                                    "and review_band.<method> (a number, or 'calibrated' for the version's own), "
                                    "audit_share, holdout_share, keep_pass_share (0..1), shifts ('early 6-14, "
                                    "late 14-22, night 22-6'), roi_frame (640x480), live.smoothing, live.tta, "
                                    "live.heatmap, live.heatmap_opacity, live.trigger, robustness.augment (on/off), "
                                    "robustness.tta (mirror,shift,light or none), robustness.position (on/off)."))
    setting.add_argument("tool")
    setting.add_argument("changes", nargs="+", metavar="NAME=VALUE")
    setting.set_defaults(func=cmd_tools_set)
    roi = _who(tools.add_parser("roi", help="set or clear the region of interest (audited)"))
    roi.add_argument("tool")
    roi.add_argument("box", help="x0,y0,x1,y1 in fractions of the camera frame, or 'none' for the whole frame")
    roi.add_argument("--frame", help="WIDTHxHEIGHT of the camera frame the region was drawn on (default 640x480)")
    roi.set_defaults(func=cmd_tools_roi)
    classes = _who(tools.add_parser("classes", help="replace the tool's classes (audited; good stays)"))
    classes.add_argument("tool")
    classes.add_argument("classes", help="comma-separated, e.g. good,scratch,dent")
    classes.set_defaults(func=cmd_tools_classes)
    add_bundle_commands(tools, commands, _who)  # tools export / import, keys generate (issue 19)

    samples = commands.add_parser("samples", help="manage a tool's samples").add_subparsers(
        dest="action", required=True)
    importing = _who(samples.add_parser(
        "import", help="import a folder (one sub-folder per class), a flat folder with --label, or a .zip"))
    importing.add_argument("path")
    importing.add_argument("--tool", required=True)
    importing.add_argument("--label", help="label of every file (for a flat folder)")
    importing.add_argument("--layout", choices=["auto", "folder", "mvtec"], default="auto",
                           help="mvtec: an MVTec AD category folder (auto detects it)")
    importing.add_argument("--test-split", choices=["held_out", "train"], default="held_out",
                           help="split of MVTec test images (default held_out)")
    importing.set_defaults(func=cmd_samples_import)
    _add_dataset_commands(samples)

    training = _who(commands.add_parser("train", help="train a model on a tool's samples and make it active"))
    training.add_argument("--tool", required=True)
    training.add_argument("--method", "--kind", dest="method", default=DEFAULT_METHOD, choices=method_names(),
                          help="the model method (models/registry.py); anomaly learns from the good images only")
    training.add_argument("--profile", default=None, choices=list(PROFILES),
                          help=f"default: {DEFAULT_PROFILE}, {TILED_PROFILE} when the tool tiles")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--candidate", action="store_true",
                          help="keep the new version as a candidate (the active model stays; see 'models')")
    training.set_defaults(func=cmd_train)

    predicting = _who(commands.add_parser("predict", help="inspect images with a tool's active model (recording "
                                          "needs an account with the inspect right)"))
    predicting.add_argument("--tool", required=True)
    predicting.add_argument("paths", nargs="+", metavar="PATH")
    predicting.add_argument("--no-record", action="store_true", help="do not record inspections")
    predicting.add_argument("--station", help="station name recorded (default: STUDIO_STATION or the host name)")
    predicting.add_argument("--roi", default="auto", choices=["auto", "crop", "whole"],
                            help="crop to the tool's region of interest: auto (camera-shaped images), always or never")
    predicting.set_defaults(func=cmd_predict)

    demo = commands.add_parser("demo", help="the demo project").add_subparsers(dest="action", required=True)
    demo_build = demo.add_parser("build", help="build the demo tool from the ELPV dataset")
    demo_build.add_argument("--if-empty", action="store_true", help="only when the studio has no tool yet")
    demo_build.set_defaults(func=cmd_demo_build)

    analytics = commands.add_parser("analytics", help="analytics of inspections").add_subparsers(
        dest="action", required=True)
    export = analytics.add_parser("export", help="CSV of the inspections a filter selects, streamed in chunks")
    export.add_argument("--tool", required=True)
    export.add_argument("--from", dest="start", required=True, help="first UTC day, YYYY-MM-DD")
    export.add_argument("--to", dest="end", required=True, help="last UTC day (inclusive), YYYY-MM-DD")
    export.add_argument("--station")
    export.add_argument("--version", type=int, help="model version id")
    export.add_argument("--shift", help="a shift name of the tool (default shifts: early, late, night)")
    export.add_argument("--out", default="-", help="file to write (default: stdout)")
    export.set_defaults(func=cmd_analytics_export)
    add_review_commands(commands)
    add_line_commands(commands)  # station, outputs, recipes
    add_store_commands(commands)
    add_operating_point_command(commands)  # issue 18
    add_api_commands(commands)  # REST API and its tokens (issue 19)
    add_users_commands(commands)  # accounts and roles (issue 20)
    return parser


# --- review queue, model versions, audit log (issue 8) -----------------------------------------------
def _reviewer(studio: Studio, args: argparse.Namespace) -> Any:
    """The CLI reviewer; its claims belong to ``reviewer@device`` so that 'next' then 'verdict' agree."""
    from core.reviews import Reviewer

    actor = _actor(studio, args)
    return Reviewer(actor.name, actor.device, actor.role, actor.via, actor.user_id,
                    session=f"cli:{actor.name}@{actor.device}")


def cmd_review_next(studio: Studio, args: argparse.Namespace) -> int:
    from core.reviews import next_card

    card = next_card(studio, _reviewer(studio, args), args.tool)
    _print_json(card.as_dict() if card else {"message": "nothing to review"})
    return 0


def cmd_review_verdict(studio: Studio, args: argparse.Namespace) -> int:
    from core.reviews import submit_review

    reviewer = _reviewer(studio, args)
    password = signature_password(reviewer) if args.sign else None
    _print_json({"review_id": submit_review(studio, args.inspection, args.label, reviewer, password)})
    return 0


def cmd_review_skip(studio: Studio, args: argparse.Namespace) -> int:
    from core.reviews import skip

    skip(studio, args.inspection, _reviewer(studio, args))
    _print_json({"skipped": args.inspection})
    return 0


def cmd_review_undo(studio: Studio, args: argparse.Namespace) -> int:
    from core.reviews import last_review_id, undo_review

    reviewer = _reviewer(studio, args)
    review_id = args.review_id or last_review_id(studio, reviewer.name, args.device)
    if review_id is None:
        print(f"error: {reviewer.name} has no verdict to undo", file=sys.stderr)
        return EXIT_ERROR
    _print_json({"review_id": review_id, "inspection_id": undo_review(studio, review_id, reviewer)})
    return 0


def cmd_review_queue(studio: Studio, args: argparse.Namespace) -> int:
    from core.reviews import queue_counts, suggest_for_review

    suggestions = [s.as_dict() for s in suggest_for_review(studio, args.tool, args.suggest)] if args.tool else []
    _print_json({"waiting": queue_counts(studio, args.tool), "suggested": suggestions})
    return 0


def cmd_models_list(studio: Studio, args: argparse.Namespace) -> int:
    from core.model_versions import list_versions, samples_since_active

    _print_json({"versions": [{**v.as_row(), "trained (UTC)": v.created_at.isoformat(timespec="seconds")}
                              for v in list_versions(studio, args.tool)],
                 "samples_since_active": samples_since_active(studio, args.tool)})
    return 0


def cmd_models_promote(studio: Studio, args: argparse.Namespace) -> int:
    from core.model_versions import promote

    actor = _actor(studio, args)
    replaced = promote(studio, args.tool, args.version, actor, signature_password=signature_password(actor))
    _print_json({"active": args.version, "replaced": replaced})
    return 0


def cmd_models_rollback(studio: Studio, args: argparse.Namespace) -> int:
    from core.model_versions import rollback

    actor = _actor(studio, args)
    _print_json({"active": rollback(studio, args.tool, actor, args.to, args.method, signature_password(actor))})
    return 0


def cmd_models_delete(studio: Studio, args: argparse.Namespace) -> int:
    from core.model_versions import delete_version

    delete_version(studio, args.tool, args.version, _actor(studio, args))
    _print_json({"deleted": args.version})
    return 0


def cmd_models_compare(studio: Studio, args: argparse.Namespace) -> int:
    from core.model_versions import compare_versions

    _print_json(compare_versions(studio, args.tool, args.versions, progress=_progress_printer("")).as_dict())
    return 0


def cmd_models_evaluate(studio: Studio, args: argparse.Namespace) -> int:
    from core.evaluation import realised_rates
    from core.model_versions import compare_versions

    results = compare_versions(studio, args.tool, [args.version], progress=_progress_printer("")).versions[args.version]
    _print_json({"version": args.version, **{name: e.as_dict() for name, e in results.items()},
                 "realised": realised_rates(studio, args.tool, args.version)})
    return 0


def cmd_models_extend(studio: Studio, args: argparse.Namespace) -> int:
    from core.model_versions import extend_anomaly

    _print_json(extend_anomaly(studio, args.tool, _actor(studio, args), progress=_progress_printer("")).as_dict())
    return 0


def add_review_commands(commands: Any) -> None:
    """``review`` (next / verdict / skip / undo / queue), ``models`` (list / promote / rollback / delete /
    compare) and ``audit`` (``core/audit_cli.py``)."""
    who = _who

    review = commands.add_parser("review", help="the review queue").add_subparsers(dest="action", required=True)
    nxt = who(review.add_parser("next", help="claim the next inspection to review and print it"))
    nxt.add_argument("--tool", help="only this tool's queue")
    nxt.set_defaults(func=cmd_review_next)
    verdict = who(review.add_parser("verdict", help="store what a reviewed part really is"))
    verdict.add_argument("inspection", type=int)
    verdict.add_argument("label", help="a class of the tool")
    verdict.add_argument("--sign", action="store_true", help="sign the verdict (signed review: the password of "
                         "--user, from STUDIO_PASSWORD or a prompt)")
    verdict.set_defaults(func=cmd_review_verdict)
    skipping = who(review.add_parser("skip", help="not sure: give the inspection back to the queue"))
    skipping.add_argument("inspection", type=int)
    skipping.set_defaults(func=cmd_review_skip)
    undo = who(review.add_parser("undo", help="take back your last verdict (or --review-id)"))
    undo.add_argument("--review-id", type=int)
    undo.set_defaults(func=cmd_review_undo)
    queue = review.add_parser("queue", help="how many inspections wait, per reason; uncertainty suggestions")
    queue.add_argument("--tool")
    queue.add_argument("--suggest", type=int, default=10, help="how many suggestions (with --tool)")
    queue.set_defaults(func=cmd_review_queue)

    models = commands.add_parser("models", help="a tool's model versions").add_subparsers(dest="action", required=True)
    listing = models.add_parser("list", help="versions and the samples gained since the active one")
    listing.add_argument("--tool", required=True)
    listing.set_defaults(func=cmd_models_list)
    promoting = who(models.add_parser("promote", help="make a version the active model"))
    promoting.add_argument("version", type=int)
    promoting.add_argument("--tool", required=True)
    promoting.set_defaults(func=cmd_models_promote)
    rolling = who(models.add_parser("rollback", help="go back to an earlier version (default: the previous one)"))
    rolling.add_argument("--tool", required=True)
    rolling.add_argument("--to", type=int)
    rolling.add_argument("--method", default=DEFAULT_METHOD, choices=method_names(),
                         help="which model to roll back (with no --to)")
    rolling.set_defaults(func=cmd_models_rollback)
    deleting = who(models.add_parser("delete", help="delete a version that is not active"))
    deleting.add_argument("version", type=int)
    deleting.add_argument("--tool", required=True)
    deleting.set_defaults(func=cmd_models_delete)
    comparing = models.add_parser("compare", help="held-out and reviewed metrics of versions side by side")
    comparing.add_argument("versions", type=int, nargs="+")
    comparing.add_argument("--tool", required=True)
    comparing.set_defaults(func=cmd_models_compare)
    evaluating = models.add_parser("evaluate", help="one version on the held-out and reviewed images: curves, "
                                                    "confusion, escape / false-reject / review rates, mistakes")
    evaluating.add_argument("--tool", required=True)
    evaluating.add_argument("--version", type=int, required=True)
    evaluating.set_defaults(func=cmd_models_evaluate)
    extending = who(models.add_parser("extend", help="a candidate anomaly model in seconds: the active one plus "
                                                     "the good samples added since (no full retrain)"))
    extending.add_argument("--tool", required=True)
    extending.set_defaults(func=cmd_models_extend)
    exporting = models.add_parser("export-onnx", help="each active model of a tool as an ONNX graph + JSON sidecar")
    exporting.add_argument("--tool", required=True)
    exporting.add_argument("--out", default="onnx", help="folder to write into (default ./onnx)")
    exporting.set_defaults(func=cmd_models_export_onnx)
    add_audit_commands(commands)


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


# --- dataset management (issue 7) ------------------------------------------------------------------
def _cancel_on_signals() -> threading.Event:
    """An event set by Ctrl-C / SIGTERM, so long work stops between two files."""
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    return cancel


def _ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise StudioError("ids are comma-separated numbers, e.g. 3,4,10") from None


def cmd_samples_list(studio: Studio, args: argparse.Namespace) -> int:
    from datetime import date

    from core.dataset import DatasetFilter, browse

    split = lambda text: [v for v in (text or "").split(",") if v]  # noqa: E731
    filters = DatasetFilter(split(args.label), split(args.source), split(args.split),
                            date.fromisoformat(args.since) if args.since else None,
                            date.fromisoformat(args.until) if args.until else None, args.deleted)
    result = browse(studio, args.tool, filters, args.page, args.per_page)
    for item in result.items:
        _print_json({"id": item.id, "label": item.label, "source": item.source, "split": item.split,
                     "created_at": item.created_at.isoformat(timespec="seconds"), "width": item.width,
                     "height": item.height, "mask": item.has_mask, "name": item.name})
    print(f"page {result.page} of {result.pages}; {result.total} sample(s)", file=sys.stderr)
    return 0


def cmd_samples_stats(studio: Studio, args: argparse.Namespace) -> int:
    from core.dataset import near_duplicates, stats

    _print_json({"classes": [{"label": s.label, "train": s.train, "held_out": s.held_out, "deleted": s.deleted}
                             for s in stats(studio, args.tool)],
                 "near_duplicates": [list(pair) for pair in near_duplicates(studio, args.tool)]})
    return 0


def cmd_samples_export(studio: Studio, args: argparse.Namespace) -> int:
    from core.export import ExportCancelledError, export_dataset

    show = _progress_printer("export ")
    try:
        count = export_dataset(studio, args.tool, Path(args.output), cancel=_cancel_on_signals(),
                               progress=lambda done, total: show("files", done / total))
    except ExportCancelledError as error:
        print(f"cancelled: {error}", file=sys.stderr)
        return EXIT_CANCELLED
    _print_json({"path": str(Path(args.output).resolve()), "samples": count})
    return 0


def cmd_samples_edit(studio: Studio, args: argparse.Namespace) -> int:
    from core import dataset

    ids = _ids(args.ids)
    actor = _actor(studio, args)
    if args.action == "delete":
        _print_json({"deleted": dataset.delete(studio, args.tool, ids, actor)})
    elif args.action == "restore":
        _print_json({"restored": dataset.restore(studio, args.tool, ids, actor)})
    elif args.action == "relabel":
        _print_json({"relabelled": dataset.relabel(studio, args.tool, ids, args.to, actor)})
    else:
        _print_json({"changed": dataset.set_split(studio, args.tool, ids, args.to, actor)})
    return 0


def _add_dataset_commands(samples: Any) -> None:
    listing = samples.add_parser("list", help="list a tool's samples (JSON lines, newest first)")
    listing.add_argument("--tool", required=True)
    listing.add_argument("--label", help="comma-separated labels")
    listing.add_argument("--source", help="comma-separated sources (upload, capture, review, demo, import)")
    listing.add_argument("--split", help="train and/or held_out")
    listing.add_argument("--since", help="first day, YYYY-MM-DD")
    listing.add_argument("--until", help="last day, YYYY-MM-DD")
    listing.add_argument("--deleted", action="store_true", help="list deleted samples instead")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--per-page", type=int, default=60)
    listing.set_defaults(func=cmd_samples_list)

    stats = samples.add_parser("stats", help="per-class counts and near-duplicate pairs")
    stats.add_argument("--tool", required=True)
    stats.set_defaults(func=cmd_samples_stats)

    export = samples.add_parser("export", help="export a tool's dataset as a .zip (class folders + manifest.csv)")
    export.add_argument("output")
    export.add_argument("--tool", required=True)
    export.set_defaults(func=cmd_samples_export)

    for action, help_text in [("delete", "soft-delete samples"), ("restore", "undo a delete"),
                              ("relabel", "give samples another class"), ("split", "mark samples held_out or train")]:
        edit = _who(samples.add_parser(action, help=help_text))
        edit.add_argument("ids", help="comma-separated sample ids")
        edit.add_argument("--tool", required=True)
        if action == "relabel":
            edit.add_argument("--to", required=True, help="the new class")
        if action == "split":
            edit.add_argument("--to", required=True, choices=["train", "held_out"])
        edit.set_defaults(func=cmd_samples_edit)


# --- store check (issue 16) --------------------------------------------------------------------------
def cmd_store_check(studio: Studio, args: argparse.Namespace) -> int:
    from core.store_check import check_store

    report = check_store(studio, repair=args.repair, grace_seconds=args.grace_minutes * 60)
    _print_json(report.as_dict())
    for line in report.advice() + report.notes:
        print(f"{'note' if report.problems == 0 else 'problem'}: {line}", file=sys.stderr)
    return EXIT_ERROR if report.problems else 0


def add_store_commands(commands: Any) -> None:
    """``store check [--repair]``: rows against files; the safe garbage collection."""
    store = commands.add_parser("store", help="the data folder's files against the database").add_subparsers(
        dest="action", required=True)
    check = store.add_parser("check", help="rows without files, files without rows, partial files, orphan "
                                           "artifact folders, missing thumbnails (exit 1 when rows lost files)")
    check.add_argument("--repair", action="store_true",
                       help="make missing thumbnails, remove unreferenced files and folders (never a referenced one)")
    check.add_argument("--grace-minutes", type=float, default=60.0,
                       help="keep unreferenced files younger than this (a write may be about to commit); default 60")
    check.set_defaults(func=cmd_store_check)
