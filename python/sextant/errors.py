"""Sextant's exceptions: one class per error kind of the engine, the same from the embedded
engine (``sextant.open``) and from a server (``sextant.connect``).

Every exception has ``kind`` (the server's error code, e.g. ``"not_found"``), ``field`` (the
request field at fault, or ``None``) and ``status`` (the HTTP status a server answers with).
"""

from __future__ import annotations

from typing import Optional


class SextantError(Exception):
    """Base class of every error Sextant raises."""

    kind = "internal"
    status = 500

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:  # the message names the field already when it matters
        return self.message


class NotFound(SextantError, LookupError):
    """No such collection, alias, point, document, model or route."""

    kind = "not_found"
    status = 404


class AlreadyExists(SextantError):
    """The name is taken."""

    kind = "already_exists"
    status = 409


class InvalidInput(SextantError, ValueError):
    """The request is malformed or a value is out of range; ``field`` names it."""

    kind = "invalid_input"
    status = 400


class Conflict(SextantError):
    """Valid, but in conflict with the data (another tenant's point, settings fixed at
    creation, another model)."""

    kind = "conflict"
    status = 409


class Unauthorized(SextantError):
    """No API key, or an unknown or revoked one (servers only)."""

    kind = "unauthorized"
    status = 401


class Forbidden(SextantError, PermissionError):
    """The API key's role, collections or tenant do not allow this (servers only)."""

    kind = "forbidden"
    status = 403


class Overloaded(SextantError):
    """The server is busy; retry after ``retry_after`` seconds."""

    kind = "overloaded"
    status = 503

    def __init__(self, message: str, field: Optional[str] = None, retry_after: Optional[float] = None):
        super().__init__(message, field)
        self.retry_after = retry_after


class InternalError(SextantError):
    """A bug in Sextant; a server logs the detail and never sends it."""

    kind = "internal"
    status = 500


BY_KIND = {
    cls.kind: cls
    for cls in (NotFound, AlreadyExists, InvalidInput, Conflict, Unauthorized, Forbidden, Overloaded, InternalError)
}

__all__ = [
    "SextantError",
    "NotFound",
    "AlreadyExists",
    "InvalidInput",
    "Conflict",
    "Unauthorized",
    "Forbidden",
    "Overloaded",
    "InternalError",
    "BY_KIND",
]
