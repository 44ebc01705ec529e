"""``python -m core api`` (serve the REST API) and ``api-tokens create | list | revoke`` (audited)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.studio import Studio


def _print(value: Any) -> None:
    print(json.dumps(value), flush=True)


def _actor(studio: Studio, args: argparse.Namespace) -> Any:
    from core.auth.cli import cli_actor

    return cli_actor(studio, args)


def cmd_api(studio: Studio, args: argparse.Namespace) -> int:
    import uvicorn

    from core.api.app import create_app

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.ssl_certfile:
        print(f"note: serving on {args.host} without TLS: tokens cross the network in clear text "
              "(see --ssl-certfile / --ssl-keyfile)", file=sys.stderr)
    uvicorn.run(create_app(studio), host=args.host, port=args.port, log_level=args.log_level,
                ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile, server_header=False)
    return 0


def cmd_tokens_create(studio: Studio, args: argparse.Namespace) -> int:
    from core.api.tokens import create_token

    info, secret = create_token(studio, args.name, args.scopes, _actor(studio, args))
    _print({**info.as_dict(), "token": secret})
    print("note: this is the only time the token is shown; store it now (only its hash is kept)", file=sys.stderr)
    return 0


def cmd_tokens_list(studio: Studio, args: argparse.Namespace) -> int:
    from core.api.tokens import list_tokens

    _print([t.as_dict() for t in list_tokens(studio)])
    return 0


def cmd_tokens_revoke(studio: Studio, args: argparse.Namespace) -> int:
    from core.api.tokens import revoke_token

    _print(revoke_token(studio, args.id, _actor(studio, args)).as_dict())
    return 0


def _who(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from core.auth.cli import add_identity_arguments

    return add_identity_arguments(parser, "--who")


def add_api_commands(commands: Any) -> None:
    """Register ``api`` and ``api-tokens`` on the main parser's sub-commands."""
    api = commands.add_parser("api", help="serve the REST API (FastAPI + uvicorn; OpenAPI docs at /docs)")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this PC only)")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    api.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (e.g. certs/studio.crt)")
    api.add_argument("--ssl-keyfile", help="the certificate's key (e.g. certs/studio.key)")
    api.set_defaults(func=cmd_api)

    tokens = commands.add_parser("api-tokens", help="REST API tokens: create (shown once), list, revoke")
    tokens = tokens.add_subparsers(dest="action", required=True)
    create = _who(tokens.add_parser("create", help="create a token and print it once (audited)"))
    create.add_argument("name", help="what uses it, e.g. mes-line-1")
    create.add_argument("--scopes", default="read", help="read, inspect and/or admin (comma-separated; default read)")
    create.set_defaults(func=cmd_tokens_create)
    _who(tokens.add_parser("list", help="tokens with their prefix, scopes and last use (never the token)")
         ).set_defaults(func=cmd_tokens_list)
    revoke = _who(tokens.add_parser("revoke", help="revoke a token at once (audited)"))
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=cmd_tokens_revoke)
