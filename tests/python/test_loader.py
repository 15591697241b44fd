"""ProductionModelLoader from Python: follows promotions made by other
processes, keeps the old model when loading fails, acknowledges what it
runs, and is safe to read from many threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from modelreg import ModelRegistry, NotFoundError, ProductionModelLoader, ValidationError

from conftest import wait_for
from test_registry import metadata


def read_model(path: str) -> str:
    text = Path(path).read_text()
    if text.startswith("broken"):
        raise RuntimeError("cannot parse model file")
    return text


def register(registry: ModelRegistry, artifacts, version: str, content: str) -> None:
    registry.register_model(artifacts(f"{version}.txt", content.encode()), metadata(version))


def test_follows_promotions_by_another_process(registry: ModelRegistry, artifacts, cli):
    register(registry, artifacts, "v1.0.0", "model one")
    register(registry, artifacts, "v2.0.0", "model two")
    register(registry, artifacts, "v3.0.0", "broken model")
    errors = []
    with ProductionModelLoader(registry, "risk_model", read_model, consumer_id="svc@test",
                               on_error=errors.append) as loader:
        with pytest.raises(NotFoundError, match="no risk_model model is loaded"):
            loader.model
        assert loader.version is None

        # Readers on other threads see either nothing or a whole model.
        stop = threading.Event()
        seen = set()

        def reader():
            while not stop.is_set():
                try:
                    seen.add(loader.model)
                except NotFoundError:
                    pass

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            cli.run("--reason", "go", "promote", "risk_model", "v1.0.0")
            assert loader.wait_for_version("v1.0.0", 60)
            assert loader.model == "model one"
            cli.run("--reason", "weekly", "promote", "risk_model", "v2.0.0")
            assert loader.wait_for_version("v2.0.0", 60)
            assert loader.model == "model two"
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert seen <= {"model one", "model two"}

        # A version that fails to load: the old model stays, the failure is
        # reported and acknowledged.
        cli.run("--reason", "bad one", "promote", "risk_model", "v3.0.0")
        wait_for(lambda: loader.stats["failures"] >= 1, 60, "the failed load")
        assert loader.model == "model two" and loader.version == "v2.0.0"
        assert "cannot parse model file" in loader.stats["last_error"]
        assert any("cannot parse model file" in e for e in errors)

        def consumer():
            for c in cli.json("consumers", "risk_model")["consumers"]:
                if c["consumer_id"] == "svc@test":
                    return c
            return None

        # The failed attempt is acknowledged: runs v2.0.0, attempted v3.0.0.
        wait_for(lambda: (consumer() or {}).get("attempted_version") == "v3.0.0", 60,
                 "the acknowledgement of the failed load")
        assert consumer()["version"] == "v2.0.0" and consumer()["ok"] is False

        # Rolled back by another process: production is v2.0.0 again, which
        # the loader runs already (no reload), so it is current again.
        cli.run("--reason", "back", "rollback", "risk_model")
        assert consumer()["current"] is True
        assert loader.reload_now() is None and loader.version == "v2.0.0"
    assert loader.model == "model two"  # readable after close


def test_remote_loader(registry: ModelRegistry, artifacts, serve):
    register(registry, artifacts, "v1.0.0", "remote one")
    register(registry, artifacts, "v2.0.0", "remote two")
    server = serve()
    remote = ModelRegistry.connect(server.url, server.token("model:write"))
    remote.promote_model("risk_model", "v1.0.0", reason="go")
    swaps = []
    with ProductionModelLoader(remote, "risk_model", read_model, consumer_id="remote@test",
                               on_swap=swaps.append) as loader:
        assert loader.model == "remote one"
        remote.promote_model("risk_model", "v2.0.0", reason="next")
        assert loader.wait_for_version("v2.0.0", 60)
        assert loader.model == "remote two"
        assert [s["version"] for s in swaps][-1] == "v2.0.0"
        assert Path(loader.info["path"]).read_text() == "remote two"


def test_loader_input_errors(registry: ModelRegistry, artifacts):
    register(registry, artifacts, "v1.0.0", "x")
    with pytest.raises(ValidationError):
        ProductionModelLoader(registry, "risk_model", "not callable")
    with pytest.raises(ValidationError):
        ProductionModelLoader(registry, "risk_model", read_model, poll_interval=0)
    with pytest.raises(ValidationError):
        ProductionModelLoader(registry, "risk_model", read_model, consumer_id="bad id!")
