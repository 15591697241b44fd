"""modelreg: the event-sourced model registry from Python (docs/python.md).

The same C++ core as the ``modelreg`` CLI and ``modelreg serve``, through a
pybind11 extension: every rule runs there.

    from modelreg import ModelRegistry, ModelMetadata
    registry = ModelRegistry("data/models")
    registry.register_model("model.txt", ModelMetadata(model_type="risk_model",
                                                       version="v1.0.0"))
    registry.promote_model("risk_model", "v1.0.0", reason="weekly retrain")
"""

from . import _modelreg
from ._time import parse as parse_time
from .cache import BytesCodec, Codec, DiskExpressionCache, PickleCodec
from .compat import CompatibilityResult, VersionCompatibilityChecker
from .errors import (AccessDeniedError, AlreadyExistsError, BusyError,
                     ConflictError, IntegrityError, InternalError, ModelRegistryError,
                     NotFoundError, PreconditionError, PromotionGateError, RegistryIOError,
                     RegistryWarning, RejectedError, ValidationError)
from .loader import ProductionModelLoader
from .metadata import (ModelMetadata, ModelType, capture_environment, compute_config_hash,
                       generate_model_id)
from .registry import ModelRegistry

__version__ = _modelreg.__version__

__all__ = [
    "ModelRegistry", "ModelMetadata", "ModelType", "capture_environment",
    "compute_config_hash", "generate_model_id", "VersionCompatibilityChecker",
    "CompatibilityResult", "ProductionModelLoader", "DiskExpressionCache", "Codec",
    "BytesCodec", "PickleCodec", "parse_time", "ModelRegistryError", "ValidationError",
    "NotFoundError", "AlreadyExistsError", "ConflictError", "PreconditionError",
    "IntegrityError", "RegistryIOError", "BusyError", "RejectedError", "PromotionGateError",
    "RegistryWarning", "InternalError", "AccessDeniedError", "__version__",
]
