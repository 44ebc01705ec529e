"""The studio's resources: settings, database and image store, opened once per process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings, load_settings
from core.errors import DatabaseUnavailableError
from storage.db import make_engine, make_session_factory
from storage.image_store import ImageStore
from storage.migrate import upgrade_to_head
from storage.objects import open_objects


def explain_database_error(error: DBAPIError) -> str:
    """A message a user can act on for a failed database operation."""
    text = str(error.orig).lower()
    if "locked" in text or "busy" in text:
        return "The database is locked by another program; nothing was changed. Try again in a moment."
    if "readonly" in text or "read-only" in text:
        return "The database is read-only (check the file's permissions); nothing was changed."
    if "not a database" in text or "malformed" in text or "disk image" in text:
        return ("The database file is damaged (not a database, or malformed): restore it from a backup, or move "
                "it aside (the studio then starts a new, empty one); nothing was changed.")
    if "unable to open" in text:
        return "The database file cannot be opened (check STUDIO_DATA_DIR and its permissions)."
    return f"The database is unavailable; nothing was changed. ({str(error.orig).strip()})"


@dataclass
class Studio:
    """Handles shared by every service call: thread-safe, open for the process's lifetime."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    images: ImageStore
    recorder: Any = field(default=None, repr=False)  # core.inspect.recorder.Recorder, set by open_studio

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        Database failures (locked, read-only, gone) become DatabaseUnavailableError.
        """
        try:
            with self.sessions() as session, session.begin():
                yield session
        except OperationalError as error:
            raise DatabaseUnavailableError(explain_database_error(error)) from error
        except DBAPIError as error:
            if error.connection_invalidated or _is_damaged(error):
                raise DatabaseUnavailableError(explain_database_error(error)) from error
            raise


def _is_damaged(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return "not a database" in text or "malformed" in text


def object_store(settings: Settings, namespace: str) -> ImageStore:
    """The content-addressed store ``namespace`` ("images", "thumbnails", "artifacts") of ``settings``:
    the folder ``<data>/<namespace>``, or the object store of ``STUDIO_OBJECT_STORE`` behind the spool
    ``<data>/spool/<namespace>`` (then ``root`` is that spool folder)."""
    objects = open_objects(settings.object_store, settings.data_dir, namespace)
    root = settings.data_dir / ("spool" if settings.object_store else "") / namespace
    return ImageStore(root, objects)


def open_studio(settings: Settings | None = None) -> Studio:
    """Open (and migrate to the newest schema) the studio described by ``settings``."""
    settings = settings or load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        upgrade_to_head(engine)
    except DBAPIError as error:  # locked, unreachable, or a damaged file ("file is not a database")
        engine.dispose()
        raise DatabaseUnavailableError(explain_database_error(error)) from error
    from core.inspect.recorder import Recorder  # the recorder needs a Studio to exist

    studio = Studio(settings, engine, make_session_factory(engine), object_store(settings, "images"))
    studio.recorder = Recorder(studio)
    return studio
