"""Error types shared by every part of eventbridge.

Every error the project raises on purpose derives from :class:`EventBridgeError`.
Messages say what went wrong and, where it helps, what to do next.
"""

from __future__ import annotations


class EventBridgeError(Exception):
    """Root of all eventbridge errors."""


class InvalidError(EventBridgeError):
    """Input (a manifest, a request, an argument) is invalid; retrying will not help."""


class NotFoundError(EventBridgeError):
    """The object asked for does not exist."""


class AlreadyExistsError(EventBridgeError):
    """An object with that name already exists."""


class ConflictError(EventBridgeError):
    """An update was based on a stale resourceVersion; re-read and retry."""


class PermanentError(EventBridgeError):
    """A trigger or source failed in a way that retrying cannot fix."""


class TemporaryError(EventBridgeError):
    """A trigger or source failed but may succeed later; ``delay`` is the suggested wait in seconds."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class ExprError(InvalidError):
    """An expression, path or template from a manifest could not be parsed or evaluated.

    ``column`` (1-based) points into the expression when the error has a place.
    """

    column: int | None = None
