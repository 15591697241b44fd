"""ProductionModelLoader: keeps a Python service on the production version
of one model type without restarts (docs/loader.md, docs/python.md).

The following, fetching, SHA-256 check, compatibility check, atomic swap and
acknowledgement are the C++ loader's; this class hands it your ``load_fn``.
"""

from __future__ import annotations

import atexit
import os
import socket
import tempfile
import threading
import time
import weakref
from typing import Any, Callable, Dict, Generic, Mapping, Optional, TypeVar, Union

from . import _modelreg
from .errors import NotFoundError, ValidationError
from .metadata import ModelType
from .registry import ModelRegistry

__all__ = ["ProductionModelLoader"]

T = TypeVar("T")

# Loaders still running when the interpreter exits are stopped before it
# finalizes (their thread must not need the GIL of a finalizing interpreter).
_running: "weakref.WeakSet[ProductionModelLoader[Any]]" = weakref.WeakSet()


@atexit.register
def _close_running() -> None:
    for loader in list(_running):
        loader.close()


def _default_consumer_id(model_type: str) -> str:
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return f"{model_type}@{host or 'host'}:{os.getpid()}"[:128]


class ProductionModelLoader(Generic[T]):
    """Loads the production version of ``model_type`` with ``load_fn(path)``
    now, then follows promotions and rollbacks: on a change it verifies the
    new artifact's SHA-256 (and, with ``current_datasets``, its dataset
    versions), calls ``load_fn`` on the loader's thread, and swaps the result
    in atomically. If anything fails the old model stays; the failure is
    reported to ``on_error``, counted in ``stats`` and acknowledged to the
    registry (``modelreg consumers TYPE``), as is every successful swap.

    ``registry``: an embedded registry (followed through its directory every
    ``poll_interval`` seconds) or a connected one (the server's long poll;
    artifacts are downloaded into ``cache_dir``, a temporary directory by
    default). ``.model`` is always a completely loaded model. Thread-safe;
    use it as a context manager or call ``close()``.
    """

    def __init__(self, registry: ModelRegistry, model_type: Union[ModelType, str],
                 load_fn: Callable[[str], T], *, consumer_id: Optional[str] = None,
                 poll_interval: float = 0.02,
                 current_datasets: Optional[Mapping[str, str]] = None,
                 strict_compatibility: bool = True, cache_dir: Optional[str] = None,
                 acknowledge: bool = True,
                 on_error: Optional[Callable[[str], None]] = None,
                 on_swap: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        if not callable(load_fn):
            raise ValidationError("load_fn must be callable: load_fn(path) -> model")
        if poll_interval <= 0:
            raise ValidationError("poll_interval must be positive (seconds)")
        mtype = model_type.value if isinstance(model_type, ModelType) else str(model_type)
        self._swapped = threading.Condition()
        self._user_on_swap = on_swap
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        url = registry.url or ""
        if url and cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="modelreg-loader-")
            cache_dir = self._tmp.name
        self.model_type = mtype
        self.consumer_id = consumer_id or _default_consumer_id(mtype)
        try:
            self._loader = _modelreg.Loader(
                mtype, self.consumer_id, registry.root or "", url,
                registry._session_token(), cache_dir or "",
                dict(current_datasets or {}), bool(strict_compatibility), float(poll_interval),
                10, bool(acknowledge), lambda path, info: load_fn(path), on_error,
                self._on_swap)
        except BaseException:
            if self._tmp is not None:
                self._tmp.cleanup()
            raise
        _running.add(self)

    def _on_swap(self, info: Dict[str, Any]) -> None:
        with self._swapped:
            self._swapped.notify_all()
        if self._user_on_swap is not None:
            self._user_on_swap(info)

    @property
    def model(self) -> T:
        """The model in use: always one that loaded completely. Raises
        NotFoundError while none has loaded (no production version yet, or
        every attempt failed: see ``stats``)."""
        cur = self._loader.current()
        if cur is None:
            stats = self._loader.stats()
            why = f" (last error: {stats['last_error']})" if stats["last_error"] else ""
            raise NotFoundError(f"no {self.model_type} model is loaded yet{why}")
        return cur[0]

    @property
    def info(self) -> Optional[Dict[str, Any]]:
        """What runs: ``{"model_type", "version", "sha256", "path",
        "dataset_version_ids", "directory", "loaded_at_ns"}``, or None."""
        cur = self._loader.current()
        return None if cur is None else dict(cur[1])

    @property
    def version(self) -> Optional[str]:
        """The version in use, or None."""
        info = self.info
        return None if info is None else str(info["version"])

    @property
    def stats(self) -> Dict[str, Any]:
        """``{"swaps", "failures", "last_error"}`` since the start."""
        return dict(self._loader.stats())

    def reload_now(self) -> None:
        """Checks the registry now and swaps if production changed; raises the
        error of a failed attempt (the old model stays)."""
        self._loader.reload_now()

    def wait_for_version(self, version: str, timeout: float) -> bool:
        """Waits until ``version`` is the model in use (True) or ``timeout``
        seconds pass (False). Releases the GIL while waiting."""
        deadline = time.monotonic() + timeout
        with self._swapped:
            while self.version != version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._swapped.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Stops following (waits for a load in progress). The last model
        stays readable through ``model`` until this object is dropped."""
        self._loader.close()
        _running.discard(self)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "ProductionModelLoader[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
