"""The exceptions of the modelreg package: one class per error code of the
C++ core, the same codes the CLI turns into exit codes (docs/cli.md) and the
HTTP API into statuses (docs/api.md).

Every exception carries ``code`` (the core's name, e.g. ``"conflict"``),
``message`` (the one line the CLI prints) and ``exit_code`` (what the CLI
would exit with). Catch :class:`ModelRegistryError` for all of them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

__all__ = [
    "ModelRegistryError",
    "ValidationError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "PreconditionError",
    "IntegrityError",
    "RegistryIOError",
    "BusyError",
    "RejectedError",
    "PromotionGateError",
    "InternalError",
    "AccessDeniedError",
    "RegistryWarning",
    "from_status",
]


class ModelRegistryError(Exception):
    """Base class: an error reported by the registry core."""

    code = "unknown"

    def __init__(self, message: str, code: Optional[str] = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ValidationError(ModelRegistryError, ValueError):
    """Bad input (a name, a version, metadata, a time): nothing was changed. CLI exit 2."""

    code = "invalid_argument"


class NotFoundError(ModelRegistryError, LookupError):
    """No such model, version, event or file. CLI exit 3."""

    code = "not_found"


class ConflictError(ModelRegistryError):
    """Another change got in first (``expect_current`` no longer holds), or a
    version registered again with another artifact or other metadata
    (versions are immutable). CLI exit 4."""

    code = "conflict"


class AlreadyExistsError(ConflictError):
    """Creating something that exists already (a file or directory). The
    core has this code; no method of this package raises it today (a version
    registered again with other content is a ConflictError). CLI exit 4."""

    code = "already_exists"


class PreconditionError(ModelRegistryError):
    """The transition is not legal in the current state (promote a failed
    version, archive production, ...). CLI exit 4."""

    code = "failed_precondition"


class IntegrityError(ModelRegistryError):
    """Bytes on disk fail verification: an artifact whose SHA-256 changed, a
    broken hash chain. CLI exit 5."""

    code = "corruption"


class RegistryIOError(ModelRegistryError, OSError):
    """The operating system, RocksDB or the network failed (``disk_full`` says
    whether the disk is full). CLI exit 6."""

    code = "io_error"

    @property
    def disk_full(self) -> bool:
        return "disk full" in self.message


class BusyError(ModelRegistryError):
    """Another process holds the registry for writing (e.g. ``modelreg
    serve``; connect to it instead). CLI exit 7."""

    code = "busy"


class RejectedError(ModelRegistryError):
    """Evaluated and refused by policy. CLI exit 8."""

    code = "rejected"


class PromotionGateError(RejectedError):
    """A promotion refused by the promotion gates (IC, Sharpe, paper-trading
    time, ...). The refusal is recorded in the log as event ``event_seq``;
    ``gates`` lists every gate as evaluated: ``{"name", "passed",
    "threshold", "observed", "detail", ...}``. ``promote_model(...,
    override_gates=True, reason=...)`` promotes anyway (admin)."""

    def __init__(self, message: str, gates: Optional[List[Dict[str, Any]]] = None,
                 event_seq: Optional[int] = None, exit_code: int = 8) -> None:
        super().__init__(message, "rejected", exit_code)
        self.gates: List[Dict[str, Any]] = list(gates or [])
        self.event_seq = event_seq

    @property
    def failed_gates(self) -> List[Dict[str, Any]]:
        return [g for g in self.gates if not g.get("passed")]


class InternalError(ModelRegistryError):
    """A bug in modelreg. CLI exit 1."""

    code = "internal"


class AccessDeniedError(ModelRegistryError, PermissionError):
    """The server refused the token: missing, invalid, expired, or lacking the
    scope (model:read, model:write, model:admin). CLI exit 11."""

    code = "permission_denied"


class RegistryWarning(UserWarning):
    """A problem that did not stop the call (what the CLI prints as
    "modelreg: warning: ..." or a note), e.g. a manifest.json that could not
    be rewritten, a stale server.json, the actor recorded by a server."""


_BY_CODE = {
    cls.code: cls
    for cls in (ValidationError, NotFoundError, ConflictError, AlreadyExistsError,
                PreconditionError, IntegrityError, RegistryIOError, BusyError, RejectedError,
                InternalError, AccessDeniedError)
}


def from_status(code: str, message: str, exit_code: int) -> ModelRegistryError:
    """The exception for an error code of the core (called by the extension)."""
    cls = _BY_CODE.get(code, ModelRegistryError)
    err = cls(message, code, exit_code)
    return err
