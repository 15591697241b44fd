"""ModelRegistry.connect(url, token): the same interface through a real
`modelreg serve`, answering as the embedded registry does."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from modelreg import (AccessDeniedError, ConflictError, ModelRegistry, NotFoundError,
                      PromotionGateError, ValidationError)

from test_registry import metadata

UTC = dt.timezone.utc


def test_remote_workflow_matches_embedded(registry: ModelRegistry, serve, artifacts, root):
    server = serve()
    remote = ModelRegistry.connect(server.url, server.token("model:write"))
    admin = ModelRegistry.connect(server.url, server.token("model:admin", sub="head"))
    assert remote.url == server.url and remote.root is None

    a = artifacts("a.txt")
    rec = remote.register_model(a, metadata("v1.0.0"))
    assert rec["artifact_sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
    t0 = dt.datetime.now(UTC)
    remote.promote_model("risk_model", "v1.0.0", reason="remote first", expect_current=None)
    remote.register_model(artifacts("weak.txt"), metadata("v2.0.0", ic=0.0))
    with pytest.raises(PromotionGateError) as e:
        remote.promote_model("risk_model", "v2.0.0", reason="try")
    assert [g["name"] for g in e.value.failed_gates] == ["ic"]
    with pytest.raises(AccessDeniedError):
        remote.promote_model("risk_model", "v2.0.0", reason="try", override_gates=True)
    admin.promote_model("risk_model", "v2.0.0", reason="signed off", override_gates=True)
    with pytest.raises(ConflictError, match="expect_current"):
        remote.promote_model("risk_model", "v1.0.0", expect_current="v0.1.0")
    remote.rollback("risk_model", reason="back")
    remote.annotate("risk_model", "v1.0.0", reason="note", tags={"desk": "eq"})
    remote.validate("risk_model", "v1.0.0")
    remote.register_model(artifacts("c.txt"), metadata("v3.0.0"))
    remote.archive("risk_model", "v3.0.0", reason="superseded")
    t1 = dt.datetime.now(UTC)

    # Reads through the server equal reads of the directory (beside the
    # server, read-only), for every read method.
    assert remote.current("risk_model") == registry.current("risk_model")
    assert remote.current("risk_model", at=t0) is None
    assert remote.show("risk_model", "v1.0.0") == registry.show("risk_model", "v1.0.0")
    assert remote.list() == registry.list()
    assert remote.list("risk_model", status="archived") == registry.list("risk_model",
                                                                         status="archived")
    assert remote.list("risk_model", tags={"desk": "eq"}) == registry.list(
        "risk_model", tags={"desk": "eq"})
    assert remote.history("risk_model") == registry.history("risk_model")
    assert remote.audit(t1) == registry.audit(t1)
    assert remote.audit(t1, "risk_model") == registry.audit(t1, "risk_model")
    assert remote.diff(t0, t1) == registry.diff(t0, t1)
    assert list(remote.events()) == list(registry.events())
    assert list(remote.events(3)) == list(registry.events(3))
    assert (list(remote.events(model_type="risk_model")) ==
            list(registry.events(model_type="risk_model")))
    with pytest.raises(NotFoundError):
        remote.show("risk_model", "v9.0.0")
    with pytest.raises(ValidationError):
        remote.show("bad name", "v1.0.0")


def test_remote_paging_and_follow(registry: ModelRegistry, serve, artifacts, cli):
    server = serve()
    remote = ModelRegistry.connect(server.url, server.token("model:write"))
    for i in range(3):
        remote.register_model(artifacts(f"{i}.txt"), metadata(f"v1.{i}.0"))
    head = max(e["seq"] for e in remote.events())
    # follow: an event written by another process (the CLI, through the
    # server) arrives through the long poll.
    seen = []
    gen = remote.events(head, follow=True, timeout=60)
    cli.run("--reason", "go", "promote", "risk_model", "v1.2.0",
            extra_env={"MODELREG_TOKEN": server.token("model:write", sub="bob")})
    for ev in gen:
        seen.append(ev)
        break
    assert seen[0]["type"] == "ModelPromoted" and seen[0]["actor"] == "bob"


def test_connect_needs_url_and_token():
    with pytest.raises(ValidationError):
        ModelRegistry.connect("", "t")
    with pytest.raises(ValidationError):
        ModelRegistry.connect("http://127.0.0.1:1", "")
