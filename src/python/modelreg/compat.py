"""The spec's VersionCompatibilityChecker, evaluated by the C++ core (the
same check promotion gates and the loader use; docs/gates.md)."""

from __future__ import annotations

import dataclasses
from typing import List, Mapping, Optional

from . import _modelreg

__all__ = ["CompatibilityResult", "VersionCompatibilityChecker"]


@dataclasses.dataclass(frozen=True)
class CompatibilityResult:
    """``compatible``: the model may be loaded / promoted. ``level``:
    ``"compatible"``, ``"drift"`` (a dataset at another version) or
    ``"missing"`` (a dataset absent from the current set). ``warnings``: one
    line per differing dataset."""

    compatible: bool
    level: str
    warnings: List[str]


class VersionCompatibilityChecker:
    """Is a model trained on these dataset versions safe to run against the
    current ones?

    - exact match everywhere: compatible
    - a dataset at another version: drift, blocks in strict mode, warns otherwise
    - a dataset absent from the current versions: missing, blocks in both modes

    ``strict_mode=None`` reads ``STRICT_VERSION_MODE`` ("false", "0", "no",
    "off" turn it off; anything else, or unset, keeps it on)."""

    def __init__(self, strict_mode: Optional[bool] = None) -> None:
        self.strict_mode = (bool(_modelreg.strict_from_environment()) if strict_mode is None
                            else bool(strict_mode))

    def check_compatibility(self, model_versions: Mapping[str, str],
                            current_versions: Mapping[str, str]) -> CompatibilityResult:
        compatible, level, warnings = _modelreg.check_compatibility(
            dict(model_versions), dict(current_versions), self.strict_mode)
        return CompatibilityResult(bool(compatible), str(level), list(warnings))

    def __repr__(self) -> str:
        return f"VersionCompatibilityChecker(strict_mode={self.strict_mode})"
