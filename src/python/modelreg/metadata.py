"""Registration metadata as the spec describes it: ``ModelType``,
``ModelMetadata`` and the helpers that fill it. Checking happens in the C++
core when the model is registered (docs/cli.md, "Metadata file"); this
module only carries the fields there."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import platform
from typing import Any, Dict, List, Mapping, Optional, Union

from . import _modelreg
from .errors import ValidationError

__all__ = [
    "ModelType",
    "ModelMetadata",
    "capture_environment",
    "compute_config_hash",
    "generate_model_id",
]


class ModelType(str, enum.Enum):
    """The spec's model types. Any other name that passes the registry's
    naming rule is accepted too (docs/cli.md, "Names")."""

    risk_model = "risk_model"
    alpha_weights = "alpha_weights"
    factor_definitions = "factor_definitions"
    feature_transforms = "feature_transforms"

    def __str__(self) -> str:
        return self.value


def capture_environment(created_by: Optional[str] = None) -> Dict[str, str]:
    """Where the model is produced: host, user, OS, modelreg version, git
    commit (inside a git work tree) — captured by the C++ core, as the CLI
    does — plus this Python's version and, if given, ``created_by``."""
    env = dict(_modelreg.capture_environment())
    env["python"] = platform.python_version()
    if created_by is not None:
        env["created_by"] = created_by
    return env


def compute_config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``config`` (keys sorted, no
    whitespace), computed by the core: registration checks a given
    ``config_hash`` against exactly this."""
    return str(_modelreg.config_hash(_dumps(config, "config")))


def generate_model_id() -> str:
    """A new unique model id, ``mdl_`` + 32 random hex digits."""
    return str(_modelreg.generate_model_id())


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, default=_json_default)
    except ValueError as e:  # NaN / infinity
        raise ValidationError(f"{what}: {e}") from None
    except TypeError as e:
        raise ValidationError(f"{what} is not JSON: {e}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _dt.datetime):
        return _iso(value, "a datetime")
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _iso(value: _dt.datetime, what: str) -> str:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(f"{what} is a naive datetime ({value.isoformat()}): give a "
                              "timezone-aware one")
    return value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass
class ModelMetadata:
    """The spec's ModelMetadata. ``model_type`` and ``version`` name the
    version; everything else is provenance recorded with it. Empty fields are
    filled at registration: ``model_id`` (generated), ``created_at`` (now),
    ``env`` (captured), ``checksum_sha256`` (computed from the artifact; a
    value given must match it), ``config_hash`` (computed from ``config``; a
    value given must match it)."""

    model_type: Union[ModelType, str]
    version: str
    model_id: str = ""
    created_at: Optional[_dt.datetime] = None
    dataset_version_ids: Dict[str, str] = dataclasses.field(default_factory=dict)
    snapshot_id: str = ""
    factor_list: List[str] = dataclasses.field(default_factory=list)
    parameters: Dict[str, Any] = dataclasses.field(default_factory=dict)
    checksum_sha256: str = ""
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
    env: Optional[Dict[str, str]] = None
    config: Optional[Dict[str, Any]] = None
    config_hash: str = ""
    created_by: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """The metadata as the JSON object registration takes (empty fields
        left out, so the core fills them)."""
        d: Dict[str, Any] = {
            "model_type": str(self.model_type.value if isinstance(self.model_type, ModelType)
                              else self.model_type),
            "version": self.version,
        }
        if self.model_id:
            d["model_id"] = self.model_id
        if self.created_at is not None:
            if not isinstance(self.created_at, _dt.datetime):
                raise ValidationError("created_at must be a timezone-aware datetime")
            d["created_at"] = _iso(self.created_at, "created_at")
        if self.dataset_version_ids:
            d["dataset_version_ids"] = dict(self.dataset_version_ids)
        if self.snapshot_id:
            d["snapshot_id"] = self.snapshot_id
        if self.factor_list:
            d["factor_list"] = list(self.factor_list)
        if self.parameters:
            d["parameters"] = dict(self.parameters)
        if self.checksum_sha256:
            d["checksum_sha256"] = self.checksum_sha256
        if self.metrics:
            d["metrics"] = dict(self.metrics)  # checked by the core (finite numbers)
        env = dict(self.env) if self.env is not None else None
        created_by = self.created_by
        if env is not None:
            if not created_by and "created_by" in env:
                created_by = env["created_by"]
            d["env"] = env
        if created_by:
            d["created_by"] = created_by
        if self.config is not None:
            d["config"] = self.config
        if self.config_hash:
            d["config_hash"] = self.config_hash
        return d

    def to_json(self) -> str:
        return _dumps(self.to_dict(), "metadata")
