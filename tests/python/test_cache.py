"""DiskExpressionCache from Python: the spec's call, codecs, key checks, and
several Python processes asking for the same key at once."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelreg import DiskExpressionCache, PickleCodec, ValidationError

KEY = dict(factor_name="momentum_12m", as_of_date=dt.date(2024, 1, 15),
           snapshot_id="snap_abc123", version_ids={"crsp": "v1.2.3"}, config_hash="cfg_def456")


def test_get_or_compute(tmp_path: Path):
    cache = DiskExpressionCache(tmp_path / "cache", ttl_days=7)
    calls = []

    def compute():
        calls.append(1)
        return b"\x00values\xff"

    assert cache.get_or_compute(**KEY, compute_fn=compute) == (b"\x00values\xff", False)
    assert cache.get_or_compute(**KEY, compute_fn=compute) == (b"\x00values\xff", True)
    assert len(calls) == 1
    # Every key component keeps values apart.
    for change in (dict(factor_name="value"), dict(as_of_date=dt.date(2024, 1, 16)),
                   dict(snapshot_id="snap_other"), dict(version_ids={"crsp": "v1.2.4"}),
                   dict(config_hash="cfg_other")):
        value, cached = cache.get_or_compute(**{**KEY, **change}, compute_fn=compute)
        assert not cached
    assert len(calls) == 6
    stats = cache.stats()
    assert stats["entries"] == 6 and stats["hits"] == 1 and stats["misses"] == 6
    assert cache.invalidate_factor("momentum_12m") == 5
    assert cache.invalidate_dataset("crsp", "v1.2.4") == 0
    assert cache.get_or_compute(**KEY, compute_fn=compute)[1] is False


def test_codecs_and_errors(tmp_path: Path):
    cache = DiskExpressionCache(tmp_path / "cache", codec=PickleCodec())
    frame = {"ticker": ["AAPL", "MSFT"], "momentum": [0.12, -0.03]}
    assert cache.get_or_compute(**KEY, compute_fn=lambda: frame) == (frame, False)
    assert cache.get_or_compute(**KEY, compute_fn=lambda: None) == (frame, True)

    plain = DiskExpressionCache(tmp_path / "plain")
    with pytest.raises(ValidationError, match="must return bytes"):
        plain.get_or_compute(**KEY, compute_fn=lambda: "text")

    class Boom(Exception):
        pass

    def fail():
        raise Boom("data vendor down")

    with pytest.raises(Boom, match="data vendor down"):
        plain.get_or_compute(**KEY, compute_fn=fail)
    assert plain.stats()["entries"] == 0, "a failed compute stores nothing"

    called = []
    with pytest.raises(ValidationError, match="as_of_date"):
        plain.get_or_compute(**{**KEY, "as_of_date": "15/01/2024"},
                             compute_fn=lambda: called.append(1) or b"")
    with pytest.raises(ValidationError):
        plain.get_or_compute(**{**KEY, "factor_name": "../escape"},
                             compute_fn=lambda: called.append(1) or b"")
    assert called == [], "compute_fn is not called for an invalid key"
    with pytest.raises(ValidationError):
        DiskExpressionCache(tmp_path / "x", ttl_days=0)


def test_unwritable_cache_never_fails_the_caller(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    cache = DiskExpressionCache(blocker)
    assert cache.get_or_compute(**KEY, compute_fn=lambda: b"v") == (b"v", False)
    assert cache.last_store_error


WORKER = textwrap.dedent("""
    import sys, time, datetime as dt
    from modelreg import DiskExpressionCache
    cache_dir, counter = sys.argv[1], sys.argv[2]
    def compute():
        with open(counter, "a") as f:
            f.write("computed\\n")
        time.sleep(0.3)   # long enough that the others ask meanwhile
        return b"momentum-values"
    value, cached = DiskExpressionCache(cache_dir).get_or_compute(
        factor_name="momentum_12m", as_of_date=dt.date(2024, 1, 15), snapshot_id="s",
        version_ids={"crsp": "v1"}, config_hash="c", compute_fn=compute)
    print(value.decode(), cached)
""")


def test_several_processes_compute_once(tmp_path: Path, python_env):
    counter = tmp_path / "counter"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "cache"),
                               str(counter)], env=python_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    results = sorted(out.split() for out, _ in outs)
    assert all(r[0] == "momentum-values" for r in results)
    assert [r[1] for r in results].count("False") == 1, results
    assert counter.read_text().count("computed") == 1
