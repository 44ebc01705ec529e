"""Start the studio's Streamlit server: ``python scripts/serve.py [streamlit run options]``.

``run.sh`` calls this instead of ``streamlit run app.py``. The router (``app.py``) declares every page
with ``st.navigation``, but until the first ``st.navigation`` call of the process Streamlit also takes
a folder named ``pages/`` beside the entry file for a legacy (v1) multipage app: a fresh server's
first request to a bookmarked page (``/live``) would run ``pages/live.py`` alone, without the router
and its sidebar. Declaring the app a v2 (``st.navigation``) app before the server starts closes that
window. Everything else is plain ``streamlit run``.

The server listens on localhost only unless ``--server.address`` says otherwise: serving the LAN
(a tablet) is an explicit choice, e.g. ``./run.sh --server.address 0.0.0.0`` (see the README's HTTPS
recipe: a tablet's browser opens the camera only over HTTPS).
"""

import logging
import os
import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

APP = Path(__file__).resolve().parent.parent / "app.py"


DEFAULT_ADDRESS = "localhost"


def streamlit_options(options: list[str]) -> list[str]:
    """``options`` with ``--server.address localhost`` added unless an address is given (also through
    ``STREAMLIT_SERVER_ADDRESS``)."""
    if any(o == "--server.address" or o.startswith("--server.address=") for o in options) \
            or os.environ.get("STREAMLIT_SERVER_ADDRESS"):
        return list(options)
    return ["--server.address", DEFAULT_ADDRESS, *options]


def main(options: list[str]) -> None:
    """Serve ``app.py`` with ``options`` passed on to ``streamlit run``."""
    PagesManager.uses_pages_directory = False
    # Libraries' warnings and errors (the WebRTC threads', the live worker's) reach the server's log; their
    # own loggers have only a NullHandler, so without a root handler a stopped camera stream says nothing.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.argv = ["streamlit", "run", str(APP), *streamlit_options(options)]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
