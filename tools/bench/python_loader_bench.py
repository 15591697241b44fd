#!/usr/bin/env python3
"""python-loader-bench: promote-to-swap latency of ProductionModelLoader from
Python (docs/performance.md, "Loader from Python"), the counterpart of
modelreg-loader-bench.

A registry in a temporary directory with two versions (1 MiB artifacts); the
bench promotes them alternately from Python and measures the time from just
before promote_model() to the loader's on_swap callback, in two modes:

  local   ModelRegistry(root): each promote opens the registry for writing
          (as a CLI command does); the loader follows the directory.
  remote  ModelRegistry.connect(url, token) to a `modelreg serve` started by
          the bench; the loader follows the long poll and downloads.
  beside  promotes through that server (which holds the registry, as the
          C++ bench's process does), the loader follows the directory.

Prints a markdown table. Stops by itself; the server is stopped at the end.

  PYTHONPATH=build/src/python /usr/bin/python3 tools/bench/python_loader_bench.py \
      --modelreg build/tools/modelreg/modelreg --rounds 50
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import modelreg

POLICY = '[default]\nic = "> 0.02"\nsharpe = "> 0.5"\npaper_trading_hours = "off"\n'


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def measure(registry, loader_registry, rounds, poll_interval, name):
    swapped = threading.Event()
    swap_at = [0.0]
    seen = []

    def on_swap(info):
        swap_at[0] = time.perf_counter()
        seen.append(info["version"])
        swapped.set()

    def load(path):
        with open(path, "rb") as f:
            return f.read()

    latencies, calls, follows = [], [], []
    with modelreg.ProductionModelLoader(loader_registry, "risk_model", load,
                                        consumer_id=f"bench-{name}@local",
                                        poll_interval=poll_interval, on_swap=on_swap) as loader:
        for i in range(rounds + 2):
            version = "v2.0.0" if loader.version == "v1.0.0" else "v1.0.0"
            swapped.clear()
            t0 = time.perf_counter()
            registry.promote_model("risk_model", version, reason="bench")
            t1 = time.perf_counter()
            while True:
                if not swapped.wait(30):
                    raise SystemExit(f"{name}: no swap to {version} within 30 s")
                if loader.version == version:
                    break
                swapped.clear()
            if i >= 2:  # the first rounds warm caches up
                latencies.append((swap_at[0] - t0) * 1000)
                calls.append((t1 - t0) * 1000)
                follows.append(max(0.0, swap_at[0] - t1) * 1000)
            # Let the loader's acknowledgement of this swap land first, so the
            # next promotion does not wait for its lock.
            ack_deadline = time.monotonic() + 30
            while not any(c.get("consumer_id") == f"bench-{name}@local" and
                          c.get("version") == version for c in consumers(registry)):
                if time.monotonic() > ack_deadline:
                    break
                time.sleep(0.005)
    return latencies, calls, follows


def consumers(registry):
    try:
        return registry.consumers("risk_model")["consumers"]
    except modelreg.ModelRegistryError:
        return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modelreg", default="build/tools/modelreg/modelreg",
                    help="the modelreg binary (for the server of the remote mode)")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--poll-interval", type=float, default=0.02,
                    help="local loader's poll interval, seconds (default 0.02, as the C++ bench)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="py-loader-bench-") as tmp:
        root = Path(tmp) / "registry"
        root.mkdir()
        (root / "policy.toml").write_text(POLICY)
        os.environ.setdefault("MODELREG_ACTOR", "bench")
        embedded = modelreg.ModelRegistry(root)
        import warnings
        warnings.simplefilter("ignore", modelreg.RegistryWarning)
        for v in ("v1.0.0", "v2.0.0"):
            art = Path(tmp) / f"{v}.bin"
            art.write_bytes(os.urandom(1 << 20))
            embedded.register_model(art, {"model_type": "risk_model", "version": v,
                                          "metrics": {"ic": 0.05, "sharpe": 1.0}})
        embedded.promote_model("risk_model", "v1.0.0", reason="start")

        rows = [("local (embedded promote, loader polls the directory)",
                 measure(embedded, embedded, args.rounds, args.poll_interval, "local"))]

        env = dict(os.environ, MODELREG_JWT_SECRET=secrets.token_hex(32))
        log = open(Path(tmp) / "serve.log", "w")
        server = subprocess.Popen([args.modelreg, "--root", str(root), "serve", "--listen",
                                   "127.0.0.1:0"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            url = None
            while url is None:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("modelreg serve did not start: " +
                                     (Path(tmp) / "serve.log").read_text())
                try:
                    url = json.loads((root / "server.json").read_text())["url"]
                except (OSError, ValueError, KeyError):
                    time.sleep(0.02)
            token = subprocess.run([args.modelreg, "--root", str(root), "token", "issue", "--sub",
                                    "bench", "--scope", "model:write", "--ttl", "1h"], env=env,
                                   check=True, capture_output=True, text=True).stdout.strip()
            remote = modelreg.ModelRegistry.connect(url, token)
            rows.append(("remote (promote through serve, long poll + 1 MiB download)",
                         measure(remote, remote, args.rounds, args.poll_interval, "remote")))
            # The C++ bench's local mode: the writer holds the registry (here
            # the server), the loader follows the directory.
            beside = modelreg.ModelRegistry(root, token=token)
            rows.append(("local loader, promote through serve (as the C++ bench's local)",
                         measure(remote, beside, args.rounds, args.poll_interval, "beside")))
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()

    print(f"promote -> swap from Python, {args.rounds} rounds, 1 MiB artifacts "
          f"(Python {sys.version.split()[0]}, modelreg {modelreg.__version__})\n")
    print("| mode | promote→swap p50 | p99 | max | promote call p50 | returned→swap p50 | p99 |")
    print("|---|---|---|---|---|---|---|")
    for name, (lat, calls, follows) in rows:
        print(f"| {name} | {percentile(lat, 50):.1f} ms | {percentile(lat, 99):.1f} ms | "
              f"{max(lat):.1f} ms | {percentile(calls, 50):.1f} ms | "
              f"{percentile(follows, 50):.1f} ms | {percentile(follows, 99):.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
