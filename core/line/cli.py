"""``python -m core station | outputs | recipes``: the line's command line (JSON on stdout)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from core.auth.cli import add_identity_arguments
from core.errors import InvalidInputError, NotFoundError, StudioError
from core.studio import Studio


def _print(value: Any) -> None:
    print(json.dumps(value, default=str), flush=True)


def cmd_station_run(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.station import Station, StationOptions

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    options = StationOptions(
        args.station,
        args.source,
        tool=args.tool,
        recipe=args.recipe,
        modbus_port=args.modbus_port,
        opcua_port=args.opcua_port,
        http_port=args.http_port,
        bind=args.bind,
        trigger=args.trigger,
        fps=args.fps,
    )
    station = Station(studio, options)
    try:
        station.start()
    except StudioError:
        station.stop()
        raise
    _print(
        {
            "station": args.station,
            "ready": True,
            "http": station.status()["http"],
            "modbus": args.modbus_port,
            "opcua": args.opcua_port,
        }
    )
    station.wait()
    return 0


def cmd_station_map(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.handshake import register_map

    table = register_map()
    if args.format == "json":
        _print(table)
    else:
        for kind, rows in table.items():
            print(kind)
            for row in rows:
                print(f"  {row['address']:>2}  {row['name']:<16} {row['meaning']}")
    return 0


def cmd_station_status(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.station import station_rows

    rows = [r for r in station_rows(studio) if not args.station or r["name"] == args.station]
    if args.station and not rows:
        raise NotFoundError(f"no station {args.station!r}")
    _print(rows)
    return 0


def _station_url(studio: Studio, station: str) -> str:
    from core.line.station import station_rows

    for row in station_rows(studio):
        if row["name"] == station and row["status"].get("http") and not row["status"].get("stopped_at"):
            return "http://" + row["status"]["http"]
    raise NotFoundError(f"station {station!r} is not running (no REST address in its status)")


def post_to_station(studio: Studio, station: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST to a running station's loopback REST server (trigger, recipe)."""
    request = urllib.request.Request(
        _station_url(studio, station) + path,
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read() or b"{}")
    except (urllib.error.URLError, OSError) as error:
        raise StudioError(f"station {station!r} does not answer: {getattr(error, 'reason', error)}") from None


def cmd_station_trigger(studio: Studio, args: argparse.Namespace) -> int:
    _print(post_to_station(studio, args.station, "/trigger"))
    return 0


def cmd_outputs_add(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.outputs import add_output

    secret = os.environ.get(args.secret_env) if args.secret_env else args.secret
    if args.secret_env and secret is None:
        raise InvalidInputError(f"environment variable {args.secret_env} is not set")
    _print(add_output(studio, args.station, args.name, args.kind, args.url, args.username, secret,
                      actor=_actor(studio, args)).as_dict())
    return 0


def cmd_outputs_list(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.outputs import list_outputs

    _print([o.as_dict() for o in list_outputs(studio, args.station)])
    return 0


def cmd_outputs_remove(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.outputs import remove_output

    remove_output(studio, args.station, args.name, actor=_actor(studio, args))
    _print({"removed": args.name})
    return 0


def cmd_outputs_test(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.outputs import publish_test

    result = publish_test(studio, args.station, args.name, actor=_actor(studio, args))
    _print(result)
    return 0 if result["ok"] else 1


def _tools_arg(text: str) -> list[Any]:
    text = text.strip()
    if text.startswith("["):
        try:
            return list(json.loads(text))
        except ValueError as error:
            raise InvalidInputError(f"--tools is a comma-separated list or a JSON list: {error}") from None
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_recipes_create(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.recipes import create_recipe

    actor = _actor(studio, args)
    _print(create_recipe(studio, args.station, args.name, args.number, _tools_arg(args.tools), actor).as_dict())
    return 0


def cmd_recipes_list(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.recipes import list_recipes

    _print([r.as_dict() for r in list_recipes(studio, args.station)])
    return 0


def cmd_recipes_activate(studio: Studio, args: argparse.Namespace) -> int:
    from core.line.recipes import activate_recipe

    _print(activate_recipe(studio, args.station, args.recipe, _actor(studio, args), via="cli").as_dict())
    return 0


def _actor(studio: Studio, args: argparse.Namespace) -> Any:
    from core.auth.cli import cli_actor

    return cli_actor(studio, args)


def add_line_commands(commands: Any) -> None:
    """Register ``station``, ``outputs`` and ``recipes`` on the main parser's sub-commands."""
    station = commands.add_parser("station", help="the headless line station").add_subparsers(
        dest="action", required=True
    )
    run = station.add_parser(
        "run", help="run a station (no browser): camera -> inspect -> PLC / MQTT / OPC UA / webhook"
    )
    run.add_argument("--station", required=True)
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--tool")
    which.add_argument("--recipe", help="recipe name or number")
    run.add_argument("--source", required=True, help="camera index, rtsp:// or http:// URL, video file or image folder")
    run.add_argument("--modbus-port", type=int, help="serve the PLC handshake over Modbus TCP on this port")
    run.add_argument("--opcua-port", type=int, help="serve the PLC handshake over OPC UA on this port")
    run.add_argument("--http-port", type=int, default=0, help="loopback REST port (0: any free port)")
    run.add_argument("--bind", default="0.0.0.0", help="address the PLC servers listen on")
    run.add_argument("--trigger", default="plc", choices=["plc", "continuous", "part-present"])
    run.add_argument("--fps", type=float, default=10.0, help="frames per second of a folder source")
    run.set_defaults(func=cmd_station_run)
    mapping = station.add_parser("map", help="the PLC register map (Modbus; OPC UA uses the same names)")
    mapping.add_argument("--format", choices=["text", "json"], default="text")
    mapping.set_defaults(func=cmd_station_map)
    status = station.add_parser("status", help="stations and their last status")
    status.add_argument("--station")
    status.set_defaults(func=cmd_station_status)
    trigger = station.add_parser("trigger", help="trigger a running station by hand")
    trigger.add_argument("--station", required=True)
    trigger.set_defaults(func=cmd_station_trigger)

    outputs = commands.add_parser("outputs", help="where a station's events go").add_subparsers(
        dest="action", required=True
    )
    add = add_identity_arguments(outputs.add_parser("add", help="add an MQTT broker or a webhook"))
    add.add_argument("--station", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=["mqtt", "webhook"])
    add.add_argument("--url", required=True, help="mqtt://host:1883/prefix or https://host/path")
    add.add_argument("--username")
    add.add_argument("--secret", help="broker password or webhook HMAC key (prefer --secret-env)")
    add.add_argument("--secret-env", help="read the secret from this environment variable")
    add.set_defaults(func=cmd_outputs_add)
    listing = outputs.add_parser("list", help="outputs with their backlog (secrets masked)")
    listing.add_argument("--station")
    listing.set_defaults(func=cmd_outputs_list)
    for action, func, text in (
        ("remove", cmd_outputs_remove, "remove an output"),
        ("test", cmd_outputs_test, "send one test event now"),
    ):
        sub = add_identity_arguments(outputs.add_parser(action, help=text))
        sub.add_argument("--station", required=True)
        sub.add_argument("--name", required=True)
        sub.set_defaults(func=func)

    recipes = commands.add_parser("recipes", help="products of a station").add_subparsers(dest="action", required=True)
    create = add_identity_arguments(
        recipes.add_parser("create", help="a named set of tools with a number for the PLC"))
    create.add_argument("--station", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--number", type=int, required=True)
    create.add_argument(
        "--tools",
        required=True,
        help='tool names (a,b) or JSON: [{"tool": "a", "roi": [0,0,1,1], "threshold": 0.4, "policy": "cross-check"}]',
    )
    create.set_defaults(func=cmd_recipes_create)
    rlist = recipes.add_parser("list", help="a station's recipes")
    rlist.add_argument("--station", required=True)
    rlist.set_defaults(func=cmd_recipes_list)
    activate = add_identity_arguments(
        recipes.add_parser("activate", help="switch the station to a recipe (name or number)"))
    activate.add_argument("--station", required=True)
    activate.add_argument("recipe")
    activate.set_defaults(func=cmd_recipes_activate)
