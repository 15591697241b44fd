"""ModelRegistry: one interface to a registry directory (embedded: this
process opens the RocksDB log, as the CLI does) or to a ``modelreg serve``
(``ModelRegistry.connect(url, token)``: the HTTP API).

Every call runs the C++ core's own command (the function behind the CLI
command of the same name); answers are the JSON objects ``modelreg --json``
prints and the HTTP API returns (docs/cli.md, docs/api.md), as dicts. Times
in answers are ISO-8601 UTC strings with nanoseconds (``modelreg.parse_time``
turns one into a datetime); times given are timezone-aware datetimes or such
strings.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import time
import urllib.parse
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import _modelreg
from ._time import TimeLike, optional_ns, to_ns
from .errors import NotFoundError, PromotionGateError, RejectedError, ValidationError
from .metadata import ModelMetadata, ModelType, _dumps

__all__ = ["ModelRegistry"]

PathLike = Union[str, "os.PathLike[str]"]
class _NotGiven:
    """The default of expect_current: no expectation (None means "none in production")."""

    def __repr__(self) -> str:
        return "<not given>"


_UNSET: Any = _NotGiven()
_GATE_EVENT = re.compile(r"recorded as event #(\d+)\)$")


def _name(value: Union[ModelType, str]) -> str:
    return value.value if isinstance(value, ModelType) else str(value)


def _default_actor() -> str:
    actor = os.environ.get("MODELREG_ACTOR", "")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.geteuid()}"


class ModelRegistry:
    """A model registry (docs/python.md).

    ``ModelRegistry(root)`` works on the registry directory ``root`` in this
    process; writes open it for writing for the length of the call (RocksDB
    admits one writing process), reads open it read-only beside any writer.
    When a ``modelreg serve`` holds the directory, writes go through it with
    ``token`` (or ``MODELREG_TOKEN``), as the CLI's do.

    ``actor`` is recorded in the events you write (default:
    ``MODELREG_ACTOR``, else your login name); through a server the token's
    subject is recorded instead.
    """

    def __init__(self, root: PathLike, *, actor: Optional[str] = None,
                 token: Optional[str] = None, lock_wait: float = 10.0) -> None:
        root = os.fspath(root)
        if not root:
            raise ValidationError("the registry directory must not be empty")
        self._init(root=root, url="", token=token or os.environ.get("MODELREG_TOKEN", ""),
                   actor=actor, lock_wait=lock_wait)

    @classmethod
    def connect(cls, url: str, token: str, *, actor: Optional[str] = None) -> "ModelRegistry":
        """A registry behind ``modelreg serve`` at ``url`` (``http(s)://host:port``),
        with a bearer ``token`` (``modelreg token issue``): model:read for reads,
        model:write for writes, model:admin to override gates."""
        if not url:
            raise ValidationError("connect needs the server's url")
        if not token:
            raise ValidationError("connect needs a bearer token (`modelreg token issue`)")
        self = cls.__new__(cls)
        self._init(root="", url=url.rstrip("/"), token=token, actor=actor, lock_wait=10.0)
        return self

    def _init(self, *, root: str, url: str, token: str, actor: Optional[str],
              lock_wait: float) -> None:
        self._session = _modelreg.Session(
            root, url, token, actor if actor is not None else _default_actor(),
            actor is not None, int(lock_wait * 1000))

    @property
    def root(self) -> Optional[str]:
        """The registry directory (None for a connected registry)."""
        return self._session.root or None

    @property
    def url(self) -> Optional[str]:
        """The server's url (None for an embedded registry)."""
        return self._session.url or None

    def _session_token(self) -> str:
        return str(self._session.token)

    def __repr__(self) -> str:
        where = f"url={self.url!r}" if self.url else f"root={self.root!r}"
        return f"ModelRegistry({where})"

    # ------------------------------------------------------------------ writes

    def register_model(self, path: PathLike,
                       metadata: Union[ModelMetadata, Mapping[str, Any], None] = None, *,
                       model_type: Union[ModelType, str, None] = None,
                       version: Optional[str] = None,
                       config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Registers the artifact at ``path`` (a file; a directory only
        embedded) with its metadata; the new version is ``staged``.

        ``metadata``: a :class:`ModelMetadata` or a dict of the same fields
        (docs/cli.md, "Metadata file"); ``model_type``/``version`` default to
        the metadata's. Returns the version's record (``show``), with
        ``already_registered`` True when exactly this was registered before
        (nothing written). Raises ValidationError (bad names or metadata),
        AlreadyExistsError (the version exists with other content)."""
        if isinstance(metadata, ModelMetadata):
            meta: Dict[str, Any] = metadata.to_dict()
        elif metadata is None:
            meta = {}
        elif isinstance(metadata, Mapping):
            meta = dict(metadata)
        else:
            raise ValidationError("metadata must be a ModelMetadata or a dict, not "
                                  f"{type(metadata).__name__}")
        mtype = _name(model_type) if model_type is not None else _name(meta.get("model_type", ""))
        mversion = version if version is not None else str(meta.get("version", ""))
        if not mtype:
            raise ValidationError("register_model needs a model type (metadata.model_type or "
                                  "model_type=)")
        if not mversion:
            raise ValidationError("register_model needs a version (metadata.version or version=)")
        config_json = _dumps(dict(config), "config") if config is not None else None
        return self._json(self._session.register(mtype, mversion, os.fspath(path),
                                                 _dumps(meta, "metadata"), config_json))

    def promote_model(self, model_type: Union[ModelType, str], version: str, *,
                      reason: str = "", expect_current: Optional[str] = _UNSET,
                      override_gates: bool = False) -> Dict[str, Any]:
        """Makes ``version`` the production version (the previous one is
        archived), if the promotion gates pass (docs/gates.md).

        ``expect_current``: the version you believe is production now (None:
        none); another one is a ConflictError and nothing changes.
        ``override_gates`` (model:admin through a server) promotes despite
        failed gates and needs ``reason``. Raises PromotionGateError (with
        ``.gates``) when the gates refuse, IntegrityError when the artifact
        changed on disk (the version is marked failed), PreconditionError
        for an illegal transition. Returns ``{"seq", "summary"}``."""
        expect: Optional[str]
        if expect_current is _UNSET:
            expect = None
        else:
            expect = "" if expect_current is None else str(expect_current)
        mtype = _name(model_type)
        try:
            return self._json(self._session.promote(mtype, version, reason, expect,
                                                    bool(override_gates)))
        except RejectedError as e:
            m = _GATE_EVENT.search(e.message)
            if m is None or "refused by the gates" not in e.message:
                raise
            seq = int(m.group(1))
            gates: List[Dict[str, Any]] = []
            for ev in self._events_page(seq - 1, None, 1)[0]:
                if ev.get("seq") == seq:
                    gates = list(ev.get("payload", {}).get("gates", []))
            raise PromotionGateError(e.message, gates=gates, event_seq=seq,
                                     exit_code=e.exit_code) from None

    def rollback(self, model_type: Union[ModelType, str], *, to: Optional[str] = None,
                 fail_current: bool = False, reason: str = "",
                 dry_run: bool = False) -> Dict[str, Any]:
        """Puts back the version that was production before (or ``to``); the
        current one becomes archived, or failed with ``fail_current`` (needs
        ``reason``). ``dry_run`` decides and checks, writes nothing. Returns
        ``{"seq", "summary", "model_type", "from", "to", "current_becomes",
        "dry_run"}``."""
        return self._json(self._session.rollback(_name(model_type), reason, to or "",
                                                 bool(fail_current), bool(dry_run)))

    def archive(self, model_type: Union[ModelType, str], version: str, *,
                reason: str = "") -> Dict[str, Any]:
        """A staged version becomes archived."""
        return self._json(self._session.archive(_name(model_type), version, reason))

    def fail(self, model_type: Union[ModelType, str], version: str, *, reason: str = "",
             force: bool = False) -> Dict[str, Any]:
        """Marks a version failed (it can never be promoted); the production
        version only with ``force``."""
        return self._json(self._session.fail(_name(model_type), version, reason, bool(force)))

    def validate(self, model_type: Union[ModelType, str], version: str, *,
                 reason: str = "") -> Dict[str, Any]:
        """Re-hashes the artifact (and runs the policy's validator) and records
        the result; ``{"ok", "detail", "seq", "result"}``."""
        return self._json(self._session.validate(_name(model_type), version, reason))

    def annotate(self, model_type: Union[ModelType, str], version: str, *, reason: str,
                 tags: Optional[Mapping[str, str]] = None, untag: Sequence[str] = (),
                 description: Optional[str] = None,
                 metrics: Optional[Mapping[str, float]] = None,
                 source: str = "") -> Dict[str, Any]:
        """Records what was learned after registration: tags set or removed, a
        description ("" clears it), late metrics (with their ``source``).
        Needs ``reason``. The registration itself never changes."""
        tag_args = [f"{k}={v}" for k, v in (tags or {}).items()]
        metric_args = [f"{k}={_number(v, k)}" for k, v in (metrics or {}).items()]
        return self._json(self._session.annotate(_name(model_type), version, reason, tag_args,
                                                 list(untag), description, metric_args, source))

    # ------------------------------------------------------------------- reads

    def current(self, model_type: Union[ModelType, str], *,
                at: Optional[TimeLike] = None) -> Optional[Dict[str, Any]]:
        """The production version now (or at ``at``): ``{"model_type",
        "production", "record", "promotion"}`` with the promotion's gates and
        policy; None when there is none."""
        mtype = _name(model_type)
        at_ns = optional_ns(at, "at")
        if self.url:
            try:
                return self._get(f"/api/v1/models/{_q(mtype)}/current", at=_t(at_ns))
            except NotFoundError as e:
                if "no production version" in e.message:
                    return None
                raise
        answer = self._json(self._session.current(mtype, at_ns))
        return answer if answer.get("production") is not None else None

    def show(self, model_type: Union[ModelType, str], version: str, *,
             at: Optional[TimeLike] = None) -> Dict[str, Any]:
        """One version's record (as of ``at``) with its full registration
        (metrics, datasets, factors, parameters, config, environment). Raises
        NotFoundError when it is not registered (by then)."""
        mtype = _name(model_type)
        at_ns = optional_ns(at, "at")
        if self.url:
            return self._get(f"/api/v1/models/{_q(mtype)}/{_q(version)}", at=_t(at_ns))
        return self._json(self._session.show(mtype, version, at_ns))

    def consumers(self, model_type: Union[ModelType, str]) -> Dict[str, Any]:
        """What the services that load ``model_type`` run (their loaders'
        acknowledgements): ``{"model_type", "production", "production_since",
        "consumers": [{"consumer_id", "version", "ok", "attempted_version",
        "detail", "at", "current", "behind_seconds"}, ...]}``."""
        mtype = _name(model_type)
        if self.url:
            return self._get(f"/api/v1/models/{_q(mtype)}/consumers")
        return self._json(self._session.consumers(mtype))

    def list(self, model_type: Union[ModelType, str, None] = None, *,
             status: Optional[str] = None, sort: Optional[str] = None,
             at: Optional[TimeLike] = None, tags: Optional[Mapping[str, str]] = None,
             since: Optional[TimeLike] = None,
             until: Optional[TimeLike] = None) -> List[Dict[str, Any]]:
        """Version records: of one type or all, optionally one ``status``,
        sorted by a metric (descending), as of ``at``, with every one of
        ``tags``, registered in [``since``, ``until``]."""
        mtype = _name(model_type) if model_type is not None else ""
        at_ns = optional_ns(at, "at")
        since_ns, until_ns = optional_ns(since, "since"), optional_ns(until, "until")
        tag_args = [f"{k}={v}" for k, v in (tags or {}).items()]
        if self.url:
            path = f"/api/v1/models/{_q(mtype)}" if mtype else "/api/v1/models"
            pages = self._pages(path, "versions", status=status, sort=sort, at=_t(at_ns),
                                tag=tag_args, since=_t(since_ns), until=_t(until_ns))
            return pages
        answer = self._json(self._session.list(mtype, status or "", sort or "", at_ns, tag_args,
                                               since_ns, until_ns, 0))
        return list(answer["versions"])

    def history(self, model_type: Union[ModelType, str], *, since: Optional[TimeLike] = None,
                until: Optional[TimeLike] = None) -> List[Dict[str, Any]]:
        """Every promotion and rollback of the type (in [since, until]), oldest
        first, each with its actor, reason, gates and the version it replaced."""
        mtype = _name(model_type)
        since_ns, until_ns = optional_ns(since, "since"), optional_ns(until, "until")
        if self.url:
            return self._pages(f"/api/v1/models/{_q(mtype)}/history", "history",
                               since=_t(since_ns), until=_t(until_ns))
        answer = self._json(self._session.history(mtype, since_ns, until_ns, 0))
        return list(answer["history"])

    def audit(self, at: TimeLike, model_type: Union[ModelType, str, None] = None
              ) -> Dict[str, Any]:
        """What was in production at ``at``, and why: ``{"at", "seq", "models":
        [...], "policy"}``, each model with the promotion that put it there
        (actor, reason, gates, policy). Contains nothing recorded after ``at``
        (docs/pointintime.md)."""
        at_ns = to_ns(at, "at")
        mtype = _name(model_type) if model_type is not None else ""
        if self.url:
            return self._get("/api/v1/audit", at=_t(at_ns), type=mtype or None)
        return self._json(self._session.audit(at_ns, mtype))

    def diff(self, start: TimeLike, end: TimeLike) -> Dict[str, Any]:
        """Production per type at ``start`` and at ``end``, and every event
        recorded in between (``{"from", "to", "production", "events"}``)."""
        from_ns, to_ns_ = to_ns(start, "start"), to_ns(end, "end")
        if self.url:
            return self._get("/api/v1/diff", **{"from": _t(from_ns), "to": _t(to_ns_)})
        return self._json(self._session.diff(from_ns, to_ns_))

    def events(self, after: int = 0, *, model_type: Union[ModelType, str, None] = None,
               follow: bool = False, poll_interval: float = 0.2,
               timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """The events after sequence number ``after``, oldest first, as JSON
        (docs/events.md). With ``follow`` the iterator keeps waiting for new
        ones (a server's long poll, or a poll of the directory every
        ``poll_interval`` seconds) until ``timeout`` seconds pass (None:
        forever); break out of the loop to stop."""
        mtype = _name(model_type) if model_type is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        last = int(after)
        while True:
            page, looked_at, full = self._events_page(last, mtype, 1000, wait=follow,
                                                      deadline=deadline)
            for ev in page:
                yield ev
            last = max(last, looked_at)
            if full:
                continue
            if not follow:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            if not self.url:
                pause = poll_interval
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - time.monotonic()))
                time.sleep(pause)

    # ---------------------------------------------------------------- helpers

    def _events_page(self, after: int, model_type: Optional[str], limit: int, *,
                     wait: bool = False, deadline: Optional[float] = None
                     ) -> "tuple[List[Dict[str, Any]], int, bool]":
        """(events after `after` of `model_type`, the last seq looked at,
        whether the page was full)."""
        if self.url:
            wait_s = None
            if wait:
                left = 10.0 if deadline is None else deadline - time.monotonic()
                wait_s = max(0, min(10, int(left)))
            answer = self._get("/api/v1/events", after=str(after), limit=str(limit),
                               wait=None if wait_s is None else str(wait_s))
            events = list(answer.get("events", []))
            looked_at = int(events[-1]["seq"]) if events else after
            full = len(events) >= limit
            if model_type:
                # The API has no type filter: an event is of a type when its
                # payload names it (as `modelreg events --type` decides).
                events = [e for e in events if e.get("payload", {}).get("model_type") == model_type]
            return events, looked_at, full
        answer = self._json(self._session.events(after, model_type or "", limit))
        events = list(answer["events"])
        return events, int(answer["last"]), len(events) >= limit

    def _get(self, path: str, **params: Any) -> Dict[str, Any]:
        query: List[tuple] = []
        for k, v in params.items():
            if v is None:
                continue
            for item in (v if isinstance(v, list) else [v]):
                query.append((k, item))
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return self._json(self._session.get(path))

    def _pages(self, path: str, key: str, **params: Any) -> List[Dict[str, Any]]:
        rows: List[Dict[str, Any]] = []
        cursor = None
        while True:
            answer = self._get(path, cursor=cursor, **params)
            rows.extend(answer.get(key, []))
            cursor = answer.get("next")
            if not cursor:
                return rows

    @staticmethod
    def _json(text: str) -> Any:
        return json.loads(text) if text.strip() else {}


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _t(ns: Optional[int]) -> Optional[str]:
    return None if ns is None else str(_modelreg.format_time(ns))


def _number(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"metric {name} must be a number, not {type(value).__name__}")
    return repr(float(value))
