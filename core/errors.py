"""Errors whose message is meant for the person using the studio."""


class StudioError(Exception):
    """A problem the user can act on; ``str(error)`` is the message to show."""


class NotFoundError(StudioError):
    """A tool, model or inspection that does not exist."""


class InvalidInputError(StudioError):
    """Input that cannot be used as given (bad names, too few images, ...)."""


class DatabaseUnavailableError(StudioError):
    """The database is locked, read-only or unreachable; nothing was changed."""


class TrainingBusyError(StudioError):
    """A training already runs for this tool."""


class TrainingCancelledError(StudioError):
    """The training was cancelled; the active model is unchanged."""


class PermissionDeniedError(StudioError):
    """The acting account's role does not allow this action; nothing was changed (the refusal is audited)."""


class AuthenticationError(StudioError):
    """A sign-in or signature that failed: wrong password, locked or disabled account."""
