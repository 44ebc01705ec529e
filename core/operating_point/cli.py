"""``python -m core operating-point``: show, apply, recompute or clear a tool's operating point.

Without ``--apply`` it only shows what it would choose. The last stdout line is one JSON object with
the promised rates (their ranges, guaranteed bounds and the rule of each)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.auth.cli import add_identity_arguments, cli_actor, signature_password
from core.errors import InvalidInputError
from core.operating_point.adapt import WINDOW
from core.operating_point.choose import Targets
from core.studio import Studio


def _targets(args: argparse.Namespace) -> Targets:
    goals = [(name, value) for name, value in (("max_escape", args.max_escape),
                                               ("max_false_reject", args.max_false_reject),
                                               ("cost_ratio", args.cost_ratio)) if value is not None]
    goal, value = goals[0] if goals else ("minimax", None)
    try:
        return Targets(args.max_review, goal, value, args.defect_share).validated()
    except ValueError as error:
        raise InvalidInputError(str(error)) from None


def cmd_operating_point(studio: Studio, args: argparse.Namespace) -> int:
    from core.operating_point import service  # loads the models: only when the command runs

    actor = cli_actor(studio, args)
    if args.clear:
        service.clear(studio, args.tool, actor, signature_password(actor))
        print(json.dumps(service.status(studio, args.tool)), flush=True)
        return 0
    if args.recompute:
        choice, point = service.recompute(studio, args.tool, actor, signature_password(actor))
        print(json.dumps(service.choice_json(choice, dict(point.versions), True)), flush=True)
        return 0
    if args.max_review is None:
        print(json.dumps(service.status(studio, args.tool)), flush=True)
        return 0
    targets = _targets(args)
    if args.adapt and args.window < 1:
        raise InvalidInputError("--window is a positive number of recent inspections")
    adapt = args.window if args.adapt else 0
    if args.apply:
        choice, point = service.apply(studio, args.tool, targets, actor, adapt, signature_password(actor))
        versions: dict[str, Any] = dict(point.versions)
    else:
        choice, data = service.propose(studio, args.tool, targets, adapt)
        versions = data.versions
    print(choice.sentence())
    print(json.dumps(service.choice_json(choice, versions, args.apply)), flush=True)
    return 0


def add_operating_point_command(commands: Any) -> None:
    """Register ``operating-point`` on the CLI's subcommands."""
    parser = commands.add_parser("operating-point",
                                 help="choose the cut points of a tool's decision from targets (audited with --apply)")
    parser.add_argument("--tool", required=True)
    parser.add_argument("--max-review", type=float, help="largest share of parts sent to a person (0-1)")
    goal = parser.add_mutually_exclusive_group()
    goal.add_argument("--max-escape", type=float, help="largest escape rate (defectives passed among decided)")
    goal.add_argument("--max-false-reject", type=float,
                      help="largest false-reject rate (goods failed among decided; good images only: "
                           "0.01, 0.02, 0.05 or 0.1)")
    goal.add_argument("--cost-ratio", type=float, help="an escape costs this many false rejects")
    parser.add_argument("--defect-share", type=float,
                        help="the line's share of defective parts (default: review capped for any share)")
    parser.add_argument("--adapt", action="store_true",
                        help="fit the point to the scores of the tool's recent inspections (no labels needed)")
    parser.add_argument("--window", type=int, default=WINDOW,
                        help=f"recent inspections --adapt uses (default {WINDOW})")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--apply", action="store_true", help="store the chosen point (audited)")
    action.add_argument("--recompute", action="store_true",
                        help="apply the stored targets to the deciding versions (after a training or a promote)")
    action.add_argument("--clear", action="store_true", help="remove the point: each model decides alone")
    add_identity_arguments(parser, "--who")
    parser.set_defaults(func=cmd_operating_point)
