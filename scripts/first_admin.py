"""First start: create the "admin" account when the studio has none, and show its one-time password on
the terminal only (``run.sh`` calls this after building the demo).

The password goes to the controlling terminal (``/dev/tty``), never to stdout or stderr, which a service
manager may keep in its logs. Without a terminal it is written to ``<data dir>/first-admin-password.txt``
(readable by the owner only) and only that file's path is printed. It must be changed at first sign-in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.auth.accounts import bootstrap_admin  # noqa: E402
from core.auth.guard import auth_enabled  # noqa: E402
from core.config import load_settings  # noqa: E402
from core.studio import open_studio  # noqa: E402

MESSAGE = ("\n  First start: sign in as  admin  with the one-time password  {password}\n"
           "  (shown this once; you will choose your own password at the first sign-in)\n\n")


def main() -> int:
    if not auth_enabled():
        print("Single-user mode (STUDIO_AUTH=off): no sign-in; nothing is protected.")
        return 0
    settings = load_settings()
    password = bootstrap_admin(open_studio(settings))
    if password is None:
        return 0
    try:
        with open("/dev/tty", "w") as terminal:
            terminal.write(MESSAGE.format(password=password))
    except OSError:
        path = Path(settings.data_dir) / "first-admin-password.txt"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(password + "\n")
        print(f"First start: the one-time password of the account 'admin' is in {path} (delete it after use).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
