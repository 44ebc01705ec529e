"""``python -m core tools export | import`` and ``python -m core keys generate``: tool bundles."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.auth.cli import cli_actor
from core.studio import Studio

Who = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def _print(value: Any) -> None:
    print(json.dumps(value), flush=True)


def cmd_tools_export(studio: Studio, args: argparse.Namespace) -> int:
    from core.bundle.export import export_bundle
    from core.errors import InvalidInputError

    try:
        versions = list(args.version or []) + [int(v) for v in (args.versions or "").split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError("--versions takes version ids separated by commas, e.g. 12,15") from None
    result = export_bundle(studio, args.tool, Path(args.bundle), versions or None, args.with_images,
                           Path(args.sign) if args.sign else None, actor=cli_actor(studio, args))
    _print(result.as_dict())
    return 0


def cmd_tools_import(studio: Studio, args: argparse.Namespace) -> int:
    from core.bundle.import_ import import_bundle

    activation = "activate" if args.activate else "candidate" if args.candidate else "as-exported"
    result = import_bundle(studio, Path(args.bundle), cli_actor(studio, args), name=Path(args.bundle).name,
                           as_name=args.as_name, activation=activation,
                           trusted_keys_dir=Path(args.trusted_keys) if args.trusted_keys else None,
                           require_signature=args.require_signature, recipes=not args.no_recipes)
    _print(result.as_dict())
    return 0


def cmd_keys_generate(studio: Studio, args: argparse.Namespace) -> int:
    from core.bundle.signing import generate_key_pair

    _print(generate_key_pair(Path(args.dir), args.name).as_dict())
    return 0


def add_bundle_commands(tools: Any, commands: Any, who: Who) -> None:
    """``tools export`` / ``tools import`` on the ``tools`` sub-commands, ``keys generate`` on the main ones."""
    export = who(tools.add_parser("export", help="write a tool bundle (.zip): classes, settings, ROI, models, recipes"))
    export.add_argument("tool")
    export.add_argument("bundle", help="the .zip to write")
    export.add_argument("--with-images", action="store_true", help="include the dataset (images, labels, masks)")
    export.add_argument("--version", type=int, action="append", help="a model version to export (repeatable; "
                        "default: the active ones)")
    export.add_argument("--versions", help="model versions to export, comma-separated")
    export.add_argument("--sign", metavar="KEYFILE", help="sign the manifest with this Ed25519 private key")
    export.set_defaults(func=cmd_tools_export)

    importing = who(tools.add_parser(
        "import", help="import a tool bundle as a new tool (checked whole first; audited)",
        description="Import a bundle as a new tool. By default the versions that were active in the bundle's studio "
                    "are active here too; --activate makes the newest version of each method active, --candidate "
                    "keeps every version a candidate (promote it on the Models page or with 'models promote')."))
    importing.add_argument("bundle")
    importing.add_argument("--as", dest="as_name", metavar="NEW", help="import under this tool name")
    which = importing.add_mutually_exclusive_group()
    which.add_argument("--activate", action="store_true", help="make the newest imported version of each method active")
    which.add_argument("--candidate", action="store_true", help="import every version as a candidate")
    importing.add_argument("--trusted-keys", metavar="DIR", help="folder of trusted public keys (*.pub); default "
                           "STUDIO_TRUSTED_KEYS or <data folder>/trusted-keys")
    importing.add_argument("--require-signature", action="store_true",
                           help="refuse a bundle not signed by a trusted key "
                           "(STUDIO_REQUIRE_SIGNED_BUNDLES=1 always does)")
    importing.add_argument("--no-recipes", action="store_true", help="do not add the tool to its recipes here")
    importing.set_defaults(func=cmd_tools_import)

    keys = commands.add_parser("keys", help="Ed25519 keys that sign tool bundles").add_subparsers(
        dest="action", required=True)
    generate = keys.add_parser("generate", help="make a key pair: NAME.key (private, mode 0600) and NAME.pub")
    generate.add_argument("name")
    generate.add_argument("--dir", default=".", help="folder to write the two files in (default: here)")
    generate.set_defaults(func=cmd_keys_generate)
