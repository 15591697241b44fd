"""Python beside other processes for tens of seconds: a CLI writer and a
Python writer in two more processes take turns on one registry while this
process reads through ModelRegistry and a loader follows. Nobody fails or
lies. MODELREG_PY_MULTIPROCESS_SECONDS sets the length (default 15)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import time

from modelreg import ModelRegistry, ProductionModelLoader

from conftest import MODELREG_BIN

SECONDS = float(os.environ.get("MODELREG_PY_MULTIPROCESS_SECONDS", "15"))
UTC = dt.timezone.utc

PY_WRITER = textwrap.dedent("""
    import sys, time, warnings
    from modelreg import ModelRegistry, PreconditionError
    warnings.simplefilter("ignore")
    registry = ModelRegistry(sys.argv[1], actor="py-writer", lock_wait=30)
    deadline = time.monotonic() + float(sys.argv[2])
    n = 0
    while time.monotonic() < deadline:
        version = "v1.0.0" if n % 2 else "v2.0.0"
        try:
            registry.promote_model("alpha_weights", version, reason="py loop")
        except PreconditionError:
            pass   # already production (the CLI writer got there)
        n += 1
    print(n)
""")

CLI_WRITER = """
set -u; end=$((SECONDS + $2)); n=0
while [ $SECONDS -lt $end ]; do
  if [ $((n % 2)) = 0 ]; then v=v1.0.0; else v=v2.0.0; fi
  out=$("$1" --lock-wait 30 --reason "cli loop" promote risk_model $v 2>&1) || {
    case "$out" in *"already in production"*) ;; *) echo "FAIL: $out"; exit 1;; esac; }
  n=$((n + 1))
done
echo $n
"""


def test_readers_beside_writers(registry: ModelRegistry, artifacts, root, python_env):
    for t in ("risk_model", "alpha_weights"):
        for v in ("v1.0.0", "v2.0.0"):
            registry.register_model(artifacts(f"{t}-{v}.txt", f"{t} {v}".encode()),
                                    {"model_type": t, "version": v,
                                     "metrics": {"ic": 0.05, "sharpe": 1.0}})
    registry.promote_model("risk_model", "v1.0.0", reason="start")
    fixed = dt.datetime.now(UTC)
    audit_fixed = registry.audit(fixed)

    env = dict(python_env, MODELREG_ROOT=str(root), MODELREG_ACTOR="cli-writer")
    writers = [
        subprocess.Popen(["bash", "-c", CLI_WRITER, "cli-writer", MODELREG_BIN, str(int(SECONDS))],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen([sys.executable, "-c", PY_WRITER, str(root), str(SECONDS)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    ]
    reads = 0
    with ProductionModelLoader(registry, "risk_model", lambda p: open(p).read(),
                               consumer_id="mp@test", acknowledge=False) as loader:
        last_seq = 0
        while any(w.poll() is None for w in writers):
            cur = registry.current("risk_model")
            assert cur["production"] in ("v1.0.0", "v2.0.0")
            assert registry.audit(fixed) == audit_fixed, "an answer as of a past T changed"
            versions = {r["version"]: r["status"] for r in registry.list("risk_model")}
            assert list(versions.values()).count("production") == 1, versions
            for ev in registry.events(last_seq):
                assert ev["seq"] == last_seq + 1, "events skipped or repeated"
                last_seq = ev["seq"]
            assert loader.model in ("risk_model v1.0.0", "risk_model v2.0.0")
            reads += 1
        outs = [w.communicate(timeout=120)[0] for w in writers]
        for w, out in zip(writers, outs):
            assert w.returncode == 0, out
        counts = [out.split()[-1] if out.split() else "" for out in outs]
        assert all(c.isdigit() and int(c) > 0 for c in counts), outs
        # The loader ends on the final production version.
        final = registry.current("risk_model")["production"]
        deadline = time.monotonic() + 30
        while loader.version != final and time.monotonic() < deadline:
            time.sleep(0.02)
        assert loader.version == final
    assert reads > 0
    events = list(registry.events())
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    verify = subprocess.run([MODELREG_BIN, "--root", str(root), "verify"], capture_output=True,
                            text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
