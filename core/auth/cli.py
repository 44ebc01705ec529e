"""The CLI acts as a user: one place that turns command-line arguments into an authenticated Actor,
and the ``users`` commands.

State-changing commands take ``--user NAME`` (or ``STUDIO_USER``) and the password (``STUDIO_PASSWORD``,
else a prompt), or an API token (``--token`` / ``STUDIO_TOKEN``: its creator's account and role). Without
either, a command acts as the local OS user with the viewer role (enough for read-only commands). Single-user mode
(``STUDIO_AUTH=off``) needs no password: the named (or OS) user acts as a local admin.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
from typing import Any

from core import audit
from core.auth import accounts, guard
from core.auth.roles import Role
from core.errors import AuthenticationError
from core.studio import Studio


def add_identity_arguments(parser: argparse.ArgumentParser, *aliases: str) -> argparse.ArgumentParser:
    """``--user`` (also ``--reviewer`` and ``aliases``), ``--token`` and ``--device``."""
    parser.add_argument("--user", "--reviewer", *aliases, dest="reviewer", default=None,
                        help="your account (password from STUDIO_PASSWORD or a prompt)")
    parser.add_argument("--token", default=None, help="an API token to act as its account (or STUDIO_TOKEN)")
    parser.add_argument("--device", default=socket.gethostname(), help="this device (audit log)")
    return parser


def _password(username: str) -> str:
    password = os.environ.get("STUDIO_PASSWORD")
    if password is None:
        password = getpass.getpass(f"password for {username}: ")
    return password


def cli_actor(studio: Studio, args: argparse.Namespace) -> audit.Actor:
    """The authenticated actor of a command (see the module docstring); AuthenticationError when the
    password or token is wrong."""
    from core.api.tokens import TokenChecker, TokenError, token_actor

    device = getattr(args, "device", None) or socket.gethostname()
    username = getattr(args, "reviewer", None) or os.environ.get("STUDIO_USER") or None
    token = getattr(args, "token", None) or (os.environ.get("STUDIO_TOKEN") if not username else None)
    if not guard.auth_enabled():
        return audit.Actor(username or getpass.getuser(), device, Role.ADMIN, "cli")
    if token:
        try:
            info = TokenChecker(studio).check(token, "read")
        except TokenError as error:
            raise AuthenticationError(str(error)) from None
        return token_actor(studio, info, device, via="cli")
    if not username:
        return audit.Actor(getpass.getuser(), device, Role.VIEWER, "cli")
    account = accounts.authenticate(studio, username, _password(username), device=device, via="cli")
    return accounts.actor_for(account, device=device, via="cli")


def signature_password(actor: audit.Actor) -> str | None:
    """The password to sign with: the one the CLI signed in with (None when it used a token or no account)."""
    if actor.user_id is None or not guard.auth_enabled():
        return None
    return _password(actor.name)


# --- python -m core users ... ------------------------------------------------------------------------
def _print(value: Any) -> None:
    print(json.dumps(value), flush=True)


def _account_json(account: accounts.Account) -> dict[str, Any]:
    return {"username": account.username, "full_name": account.full_name, "role": str(account.role),
            "disabled": account.disabled, "must_change_password": account.must_change_password,
            "locked_until": None if account.locked_until is None else account.locked_until.isoformat()}


def _new_password(prompt: str) -> str:
    password = os.environ.get("STUDIO_NEW_PASSWORD")
    if password is None:
        password = getpass.getpass(prompt)
        if getpass.getpass("again: ") != password:
            raise AuthenticationError("The two passwords differ.")
    return password


def cmd_users(studio: Studio, args: argparse.Namespace) -> int:
    if args.action == "change-password":
        name = args.reviewer or os.environ.get("STUDIO_USER") or getpass.getuser()
        old = _password(name)
        _print(_account_json(accounts.change_password(studio, name, old, _new_password("new password: "),
                                                      device=args.device, via="cli")))
        return 0
    actor = cli_actor(studio, args)
    if args.action == "add":
        account = accounts.create_user(studio, actor, args.name, _new_password(f"password for {args.name}: "),
                                       args.role, args.full_name, must_change_password=args.must_change)
        _print(_account_json(account))
    elif args.action == "list":
        for account in accounts.list_users(studio, actor):
            _print(_account_json(account))
    elif args.action == "disable":
        _print(_account_json(accounts.disable(studio, actor, args.name)))
    elif args.action == "enable":
        _print(_account_json(accounts.enable(studio, actor, args.name)))
    elif args.action == "set-role":
        _print(_account_json(accounts.set_role(studio, actor, args.name, args.role)))
    elif args.action == "reset-password":
        _print({"username": args.name, "one_time_password": accounts.reset_password(studio, actor, args.name)})
    elif args.action == "set-pin":
        accounts.set_pin(studio, actor, args.name, os.environ.get("STUDIO_NEW_PIN") or getpass.getpass("PIN: "))
        _print({"username": args.name, "pin": "set"})
    return 0


def add_users_commands(commands: Any) -> None:
    """``users add / list / disable / enable / set-role / reset-password / set-pin / change-password``."""
    users = commands.add_parser("users", help="accounts and roles (admins; change-password: anyone)"
                                ).add_subparsers(dest="action", required=True)
    roles = [str(r) for r in Role]
    add = add_identity_arguments(users.add_parser("add", help="create an account (password: STUDIO_NEW_PASSWORD "
                                                               "or a prompt)"))
    add.add_argument("name")
    add.add_argument("--role", choices=roles, required=True)
    add.add_argument("--full-name", default="", help="the printed name on signatures")
    add.add_argument("--must-change", action="store_true", help="must change the password at first sign-in")
    add_identity_arguments(users.add_parser("list", help="every account"))
    for action, text in (("disable", "disable an account"), ("enable", "enable (and unlock) an account"),
                         ("reset-password", "a one-time password (to change at next sign-in)"),
                         ("set-pin", "an operator's quick-switch PIN (STUDIO_NEW_PIN or a prompt)")):
        add_identity_arguments(users.add_parser(action, help=text)).add_argument("name")
    setting = add_identity_arguments(users.add_parser("set-role", help="change an account's role"))
    setting.add_argument("name")
    setting.add_argument("role", choices=roles)
    add_identity_arguments(users.add_parser("change-password", help="change your own password (old one: "
                                            "STUDIO_PASSWORD or a prompt; new: STUDIO_NEW_PASSWORD or a prompt)"))
    for parser in users.choices.values():
        parser.set_defaults(func=cmd_users)
