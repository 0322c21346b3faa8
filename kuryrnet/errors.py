"""Errors that reach Docker as a non-200 status and a {"Err": ...} body.

Every error names the value that failed and, where possible, what to do.
"""


class KuryrnetError(Exception):
    """Base class; `status` is the HTTP status sent to Docker."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequest(KuryrnetError):
    """The request from Docker is malformed or asks for something invalid."""

    status = 400


class NotFound(KuryrnetError):
    """A resource the request refers to does not exist."""

    status = 404


class Conflict(KuryrnetError):
    """The request clashes with existing state (address in use, pool taken)."""

    status = 409


class Exhausted(KuryrnetError):
    """A subnet or pool has no free address or prefix left."""

    status = 409


class BackendError(KuryrnetError):
    """Neutron or the host failed in a way that retrying did not mend."""

    status = 502


class BackendUnavailable(KuryrnetError):
    """Neutron could not be reached within the retry budget."""

    status = 503


class BindingError(KuryrnetError):
    """The host side of an endpoint could not be wired."""

    status = 500
