"""ModelRegistry on a registry directory (embedded): the spec's weekly
workflow, every error class, times, and interop with the CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

import modelreg
from modelreg import (AccessDeniedError, AlreadyExistsError, BusyError, ConflictError,
                      IntegrityError, ModelMetadata, ModelRegistry, ModelRegistryError,
                      ModelType, NotFoundError, PreconditionError, PromotionGateError,
                      RegistryIOError, RejectedError, ValidationError)

UTC = dt.timezone.utc


def metadata(version: str, ic: float = 0.05, sharpe: float = 1.2, **kw) -> ModelMetadata:
    config = {"learning_rate": 0.01, "epochs": 100}
    return ModelMetadata(
        model_id=modelreg.generate_model_id(),
        model_type=ModelType.risk_model,
        version=version,
        created_at=dt.datetime.now(UTC),
        dataset_version_ids={"crsp": "v1.2.3", "compustat": "v1.0.1"},
        snapshot_id="snap_20240101",
        factor_list=["momentum", "value", "size"],
        parameters={"halflife_days": 60, "shrinkage_intensity": 0.5},
        metrics={"ic": ic, "sharpe": sharpe},
        env=modelreg.capture_environment(created_by="training_pipeline"),
        config=config,
        config_hash=modelreg.compute_config_hash(config),
        **kw,
    )


def test_weekly_workflow(registry: ModelRegistry, artifacts, cli):
    v1 = artifacts("v1.txt")
    md = metadata("v1.0.0")
    rec = registry.register_model(v1, md)
    assert rec["status"] == "staged"
    assert rec["artifact_sha256"] == hashlib.sha256(v1.read_bytes()).hexdigest()
    assert rec["already_registered"] is False
    # The same again: idempotent, nothing written.
    assert registry.register_model(v1, md)["already_registered"] is True
    # Versions are immutable: other metadata (a new model_id) is a conflict.
    with pytest.raises(ConflictError, match="different metadata"):
        registry.register_model(v1, metadata("v1.0.0"))

    before_v1 = dt.datetime.now(UTC)
    reply = registry.promote_model("risk_model", "v1.0.0", reason="first model",
                                   expect_current=None)
    assert "promoted risk_model v1.0.0" in reply["summary"]
    cur = registry.current(ModelType.risk_model)
    assert cur["production"] == "v1.0.0"
    assert {g["name"]: g["passed"] for g in cur["promotion"]["gates"]} == {"ic": True,
                                                                          "sharpe": True}
    after_v1 = dt.datetime.now(UTC)

    registry.register_model(artifacts("v2.txt"), metadata("v2.0.0"))
    registry.promote_model("risk_model", "v2.0.0", reason="weekly retrain",
                           expect_current="v1.0.0")
    assert registry.current("risk_model")["production"] == "v2.0.0"
    assert registry.show("risk_model", "v1.0.0")["status"] == "archived"

    # Roll back: v1 is production again, v2 archived.
    rb = registry.rollback("risk_model", reason="v2 loses money")
    assert (rb["from"], rb["to"]) == ("v2.0.0", "v1.0.0")
    assert registry.current("risk_model")["production"] == "v1.0.0"

    # Audit at an instant: what ran then, and why.
    audit = registry.audit(after_v1, "risk_model")
    (model,) = audit["models"]
    assert model["production"] == "v1.0.0"
    assert model["promotion"]["reason"] == "first model"
    assert registry.audit(before_v1, "risk_model")["models"][0]["production"] is None
    assert registry.current("risk_model", at=before_v1) is None

    history = registry.history("risk_model")
    assert [h["version"] for h in history] == ["v1.0.0", "v2.0.0", "v1.0.0"]
    assert [h["kind"] for h in history] == ["promotion", "promotion", "rollback"]
    assert [r["version"] for r in registry.list("risk_model")] == ["v1.0.0", "v2.0.0"]
    assert [r["version"] for r in registry.list(status="archived")] == ["v2.0.0"]
    assert registry.list("risk_model", sort="sharpe")[0]["metrics"]["sharpe"] == 1.2

    d = registry.diff(before_v1, dt.datetime.now(UTC))
    assert d["production"]["risk_model"] == {"from": None, "to": "v1.0.0"}
    assert [e["type"] for e in d["events"]][:1] == ["ModelPromoted"]

    # Every event, and the CLI agrees on the log's content.
    events = list(registry.events())
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert cli.run("verify").returncode == 0


def test_gates_refuse_with_results(registry: ModelRegistry, artifacts):
    registry.register_model(artifacts("weak.txt"), metadata("v1.0.0", ic=0.01, sharpe=0.3))
    with pytest.raises(PromotionGateError) as e:
        registry.promote_model("risk_model", "v1.0.0", reason="try")
    err = e.value
    assert isinstance(err, RejectedError) and err.exit_code == 8
    assert {g["name"] for g in err.failed_gates} == {"ic", "sharpe"}
    assert err.event_seq is not None
    # The refusal is in the log; nothing was promoted.
    rejected = [ev for ev in registry.events() if ev["seq"] == err.event_seq]
    assert rejected[0]["type"] == "PromotionRejected"
    assert registry.current("risk_model") is None
    # Override with a reason promotes anyway and records it.
    reply = registry.promote_model("risk_model", "v1.0.0", reason="desk head signed off",
                                   override_gates=True)
    assert "GATES OVERRIDDEN" in reply["summary"]


def test_every_error_class(registry: ModelRegistry, artifacts, root: Path, serve):
    a = artifacts("a.txt")
    with pytest.raises(ValidationError) as e:
        registry.register_model(a, {"model_type": "Risk Model!", "version": "v1.0.0"})
    assert e.value.exit_code == 2 and isinstance(e.value, ValueError)
    with pytest.raises(ValidationError):
        registry.register_model(a, metadata("v1.0.0", ic=float("nan")))
    with pytest.raises(ValidationError, match="config_hash"):
        registry.register_model(a, dataclasses.replace(metadata("v1.0.0"), config_hash="0" * 64))
    with pytest.raises(NotFoundError) as e:
        registry.show("risk_model", "v9.9.9")
    assert e.value.exit_code == 3 and isinstance(e.value, LookupError)
    with pytest.raises(NotFoundError, match="does not exist"):
        registry.register_model(root / "missing.txt", metadata("v1.0.0"))
    assert not (root / "registry").exists(), "bad input wrote nothing"

    registry.register_model(a, metadata("v1.0.0"))
    with pytest.raises(ConflictError, match="different artifact") as e:
        registry.register_model(artifacts("other.txt"), metadata("v1.0.0"))
    assert e.value.exit_code == 4 and issubclass(AlreadyExistsError, ConflictError)
    registry.promote_model("risk_model", "v1.0.0", reason="go")
    registry.register_model(artifacts("b.txt"), metadata("v2.0.0"))
    with pytest.raises(ConflictError, match="expect_current"):
        registry.promote_model("risk_model", "v2.0.0", expect_current="v0.9.0")
    with pytest.raises(PreconditionError):
        registry.archive("risk_model", "v1.0.0")  # production cannot be archived
    registry.fail("risk_model", "v2.0.0", reason="bad backtest")
    with pytest.raises(PreconditionError):
        registry.promote_model("risk_model", "v2.0.0")

    # The artifact changed on disk after registration.
    registry.register_model(artifacts("c.txt"), metadata("v3.0.0"))
    stored = root / registry.show("risk_model", "v3.0.0")["artifact_path"]
    stored.chmod(0o644)
    stored.write_bytes(b"tampered")
    with pytest.raises(IntegrityError) as e:
        registry.promote_model("risk_model", "v3.0.0")
    assert e.value.exit_code == 5
    assert registry.show("risk_model", "v3.0.0")["status"] == "failed"

    with pytest.raises(RegistryIOError) as e:
        ModelRegistry.connect("http://127.0.0.1:1", "x.y.z").current("risk_model")
    assert e.value.exit_code == 6 and isinstance(e.value, OSError)

    server = serve()
    # A server holds the registry: a direct write without a token is busy.
    with pytest.raises(BusyError) as e:
        registry.archive("risk_model", "v2.0.0")
    assert e.value.exit_code == 7
    read_only = ModelRegistry.connect(server.url, server.token("model:read"))
    with pytest.raises(AccessDeniedError) as e:
        read_only.archive("risk_model", "v2.0.0")
    assert e.value.exit_code == 11 and isinstance(e.value, PermissionError)
    for cls in (ValidationError, NotFoundError, ConflictError, PreconditionError,
                IntegrityError, RegistryIOError, BusyError, RejectedError, AccessDeniedError):
        assert issubclass(cls, ModelRegistryError)


def test_times_must_be_aware(registry: ModelRegistry, artifacts):
    registry.register_model(artifacts("t.txt"), metadata("v1.0.0"))
    with pytest.raises(ValidationError, match="naive datetime"):
        registry.audit(dt.datetime(2024, 1, 15, 14, 30))
    with pytest.raises(ValidationError, match="naive datetime"):
        registry.current("risk_model", at=dt.datetime(2024, 1, 15))
    with pytest.raises(ValidationError, match="naive datetime"):
        ModelMetadata(model_type="risk_model", version="v1.0.0",
                      created_at=dt.datetime(2024, 1, 15)).to_dict()
    with pytest.raises(ValidationError):
        registry.audit(dt.date(2024, 1, 15))
    # Aware datetimes in any zone, and ISO strings, name the same instant.
    t = dt.datetime(2024, 1, 15, 14, 30, tzinfo=UTC)
    ny = t.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert registry.audit(t) == registry.audit(ny) == registry.audit("2024-01-15T14:30:00Z")
    assert modelreg.parse_time("2024-01-15T14:30:00.123456789Z") == t.replace(microsecond=123456)


def test_helpers_match_the_cli(tmp_path: Path, registry: ModelRegistry, cli, artifacts):
    config = {"b": [1, 2.5, {"z": None, "a": "é"}], "a": True}
    (tmp_path / "config.json").write_text(json.dumps(config))
    cli.run("register", "risk_model", str(artifacts("x.txt")), "--version", "v1.0.0",
            "--config", str(tmp_path / "config.json"))
    shown = registry.show("risk_model", "v1.0.0")
    assert shown["registration"]["config_hash"] == modelreg.compute_config_hash(config)
    env = modelreg.capture_environment(created_by="me")
    assert env["created_by"] == "me" and env["tool_version"].startswith("modelreg ")
    assert env["hostname"] and env["python"]
    ids = {modelreg.generate_model_id() for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("mdl_") for i in ids)


def test_compatibility_checker():
    checker = modelreg.VersionCompatibilityChecker(strict_mode=True)
    r = checker.check_compatibility(model_versions={"crsp": "v1.2.3", "compustat": "v1.0.1"},
                                    current_versions={"crsp": "v1.2.4", "compustat": "v1.0.1"})
    assert (r.compatible, r.level) == (False, "drift")
    assert r.warnings == ["crsp: model trained on v1.2.3, current is v1.2.4"]
    lax = modelreg.VersionCompatibilityChecker(strict_mode=False)
    r = lax.check_compatibility(model_versions={"crsp": "v1.2.3"},
                                current_versions={"crsp": "v1.2.4"})
    assert (r.compatible, r.level) == (True, "drift")
    r = lax.check_compatibility(model_versions={"crsp": "v1"}, current_versions={})
    assert (r.compatible, r.level) == (False, "missing")
    r = checker.check_compatibility(model_versions={"crsp": "v1"},
                                    current_versions={"crsp": "v1", "extra": "v2"})
    assert (r.compatible, r.level, r.warnings) == (True, "compatible", [])


def test_strict_mode_from_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STRICT_VERSION_MODE", "off")
    assert modelreg.VersionCompatibilityChecker().strict_mode is False
    monkeypatch.setenv("STRICT_VERSION_MODE", "banana")
    assert modelreg.VersionCompatibilityChecker().strict_mode is True
    monkeypatch.delenv("STRICT_VERSION_MODE")
    assert modelreg.VersionCompatibilityChecker().strict_mode is True


def test_interop_with_the_cli(registry: ModelRegistry, cli, artifacts):
    # Written from Python, read by the CLI.
    registry.register_model(artifacts("p.txt"), metadata("v1.0.0"))
    registry.promote_model("risk_model", "v1.0.0", reason="from python")
    registry.annotate("risk_model", "v1.0.0", reason="live check", tags={"desk": "eq"},
                      metrics={"live_sharpe": 1.1}, source="pnl")
    assert cli.json("show", "risk_model", "v1.0.0") == registry.show("risk_model", "v1.0.0")
    assert cli.json("current", "risk_model") == registry.current("risk_model")
    # Written by the CLI, read from Python.
    b = artifacts("c.txt")
    cli.run("register", "alpha_weights", str(b), "--version", "v2.1.0", "--metric", "ic=0.04",
            "--metric", "sharpe=0.9")
    cli.run("--reason", "cli promote", "promote", "alpha_weights", "v2.1.0")
    rec = registry.show("alpha_weights", "v2.1.0")
    assert rec["artifact_sha256"] == hashlib.sha256(b.read_bytes()).hexdigest()
    assert registry.current("alpha_weights")["promotion"]["reason"] == "cli promote"
    now = dt.datetime.now(UTC)
    assert cli.json("audit", "--at", now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == registry.audit(now)
    assert cli.run("verify").returncode == 0


def test_docstrings_for_help():
    for obj in (modelreg.ModelRegistry, modelreg.ModelRegistry.promote_model,
                modelreg.ModelRegistry.register_model, modelreg.ModelRegistry.audit,
                modelreg.ProductionModelLoader, modelreg.DiskExpressionCache.get_or_compute,
                modelreg.VersionCompatibilityChecker, modelreg.PromotionGateError,
                modelreg.capture_environment, modelreg.compute_config_hash):
        assert obj.__doc__ and len(obj.__doc__.strip()) > 30, obj
    stubs = Path(modelreg.__file__).with_name("_modelreg.pyi")
    assert stubs.exists() and Path(modelreg.__file__).with_name("py.typed").exists()


def test_warnings_become_python_warnings(registry: ModelRegistry, artifacts):
    # The first write adopts <root>/policy.toml: the CLI warns on stderr,
    # the package with a RegistryWarning.
    with pytest.warns(modelreg.RegistryWarning, match="adopted .*policy.toml"):
        registry.register_model(artifacts("w.txt"), metadata("v1.0.0"))
