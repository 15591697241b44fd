"""DiskExpressionCache: the point-in-time-safe disk cache of computed factor
values (docs/cache.md), the C++ cache with a codec for Python values."""

from __future__ import annotations

import datetime as _dt
import os
import pickle
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Tuple, Union

from . import _modelreg
from .errors import ValidationError

__all__ = ["Codec", "BytesCodec", "PickleCodec", "DiskExpressionCache"]

_NS_PER_DAY = 86_400 * 1_000_000_000


class Codec(Protocol):
    """Turns a computed value into the bytes the cache stores, and back."""

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class BytesCodec:
    """The default: values are ``bytes`` and stored as they are."""

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ValidationError("compute_fn must return bytes with the default codec; pass "
                                  "codec=PickleCodec() (or your own) for other values, got "
                                  f"{type(value).__name__}")
        return bytes(value)

    def decode(self, data: bytes) -> Any:
        return data


class PickleCodec:
    """Any picklable value — a pandas DataFrame included — with Python's
    pickle. Only read caches you (your team) wrote: unpickling runs code."""

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=self.protocol)

    def decode(self, data: bytes) -> Any:
        return pickle.loads(data)


class DiskExpressionCache:
    """Factor values cached on disk under a key of factor name, as-of date,
    dataset versions, snapshot and config hash, so a value is never reused
    across any of them. Entries expire ``ttl_days`` after they were written.
    A missing value is computed once across the threads and processes that
    ask for it at the same time; a corrupt entry is never served. A cache
    that cannot be written never fails the caller (the value is returned,
    ``last_store_error`` says why it was not stored)."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], ttl_days: float = 7, *,
                 codec: Optional[Codec] = None, max_value_bytes: int = 1 << 30) -> None:
        if ttl_days <= 0:
            raise ValidationError("ttl_days must be positive")
        self.codec: Codec = codec if codec is not None else BytesCodec()
        self.last_store_error: Optional[str] = None
        self._cache = _modelreg.Cache(os.fspath(path), int(ttl_days * _NS_PER_DAY),
                                      int(max_value_bytes))

    @property
    def path(self) -> str:
        return str(self._cache.dir)

    def get_or_compute(self, *, factor_name: str, as_of_date: Union[_dt.date, str],
                       snapshot_id: str, version_ids: Mapping[str, str], config_hash: str,
                       compute_fn: Callable[[], Any]) -> Tuple[Any, bool]:
        """``(value, was_cached)``: the cached value of the key, or
        ``compute_fn()`` (called once across processes asking at the same
        time), stored and returned. An exception of ``compute_fn`` propagates
        and nothing is stored. ValidationError for an invalid key (compute_fn
        is not called)."""
        if isinstance(as_of_date, _dt.datetime):
            raise ValidationError("as_of_date must be a date (YYYY-MM-DD), not a datetime")
        date = as_of_date.isoformat() if isinstance(as_of_date, _dt.date) else str(as_of_date)
        codec = self.codec

        def compute() -> bytes:
            return codec.encode(compute_fn())

        data, was_cached, store_error, _ = self._cache.get_or_compute(
            factor_name, date, snapshot_id, dict(version_ids), config_hash, compute)
        self.last_store_error = store_error
        return codec.decode(data), bool(was_cached)

    def stats(self) -> Dict[str, Any]:
        """Entries, bytes, expired and corrupt entries (from the directory),
        and this object's hits and misses."""
        import json
        return dict(json.loads(self._cache.stats()))

    def invalidate_factor(self, factor_name: str) -> int:
        """Removes every entry of a factor; how many."""
        return int(self._cache.invalidate(factor_name, None))

    def invalidate_dataset(self, name: str, version: str) -> int:
        """Removes every entry computed on dataset ``name`` at ``version``."""
        return int(self._cache.invalidate(None, (name, version)))
