#!/usr/bin/env python3
"""replication-bench: what replication through NATS JetStream costs
(docs/performance.md, "Replication"; docs/replication.md).

Starts a 3-node nats-server cluster (JetStream, R3 streams) on loopback
ports in a temporary directory, and registries beside it, each held by a
`modelreg serve`:

  local   no replication (the baseline)
  sync    leader in sync mode: a promote is acknowledged once a quorum of
          the stream has its event
  async   leader in async mode: acknowledged after the local sync, shipped
          in the background

Throughput: durable promotes (two versions promoted alternately, gates off)
through each server's HTTP API from one client, one at a time.

Lag: a follower (`modelreg follow`) of the sync leader, and a
ProductionModelLoader (the Python package, following the follower's
directory): the time from just before a promote on the leader to the swap
in the loader on the follower, p50/p99.

Prints markdown tables; stops everything it started.

  PYTHONPATH=build/src/python /usr/bin/python3 tools/bench/replication_bench.py \\
      --modelreg build/tools/modelreg/modelreg --rounds 200
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import modelreg

POLICY = '[default]\nic = "> 0.02"\nsharpe = "> 0.5"\npaper_trading_hours = "off"\n'


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(tmp: Path, nats_server: str):
    ports = [(free_port(), free_port(), free_port()) for _ in range(3)]
    routes = ", ".join(f"nats-route://127.0.0.1:{c}" for _, c, _ in ports)
    procs = []
    for i, (client, cluster, http) in enumerate(ports):
        d = tmp / f"n{i + 1}"
        d.mkdir()
        (d / "server.conf").write_text(
            f'server_name: n{i + 1}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n'
            f'jetstream {{ store_dir: "{d}/js", max_mem: 64MB, max_file: 1GB }}\n'
            f'cluster {{ name: bench, listen: 127.0.0.1:{cluster}, routes: [{routes}] }}\n')
        procs.append(subprocess.Popen([nats_server, "-c", str(d / "server.conf")],
                                      stdout=open(d / "server.log", "w"), stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    for _, _, http in ports:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the NATS cluster did not start")
            time.sleep(0.1)
    return procs, ",".join(f"nats://127.0.0.1:{c}" for c, _, _ in ports)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def prepare(binary, root: Path, tmp: Path):
    root.mkdir()
    (root / "policy.toml").write_text(POLICY)
    for v in ("v1.0.0", "v2.0.0"):
        art = tmp / f"{root.name}-{v}.bin"
        art.write_bytes(os.urandom(1 << 20))
        run([binary, "--root", str(root), "register", "risk_model", str(art), "--version", v,
             "--metric", "ic=0.05", "--metric", "sharpe=1.0"])
    run([binary, "--root", str(root), "promote", "risk_model", "v1.0.0", "--reason", "start"])


def serve(binary, root: Path, env):
    log = open(root.parent / f"{root.name}-serve.log", "w")
    p = subprocess.Popen([binary, "--root", str(root), "serve", "--listen", "127.0.0.1:0"],
                         env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            url = json.loads((root / "server.json").read_text())["url"]
            break
        except (OSError, ValueError, KeyError):
            if p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve {root} did not start")
            time.sleep(0.02)
    token = run([binary, "--root", str(root), "token", "issue", "--sub", "bench", "--scope",
                 "model:write", "--ttl", "1h"], env=env).strip()
    return p, modelreg.ModelRegistry.connect(url, token)


def throughput(remote, rounds):
    lat = []
    version = "v1.0.0"
    t_start = time.perf_counter()
    for _ in range(rounds):
        version = "v2.0.0" if version == "v1.0.0" else "v1.0.0"
        t0 = time.perf_counter()
        remote.promote_model("risk_model", version, reason="bench")
        lat.append((time.perf_counter() - t0) * 1000)
    return rounds / (time.perf_counter() - t_start), lat


def follower_lag(remote, follower_root: Path, rounds, poll_interval):
    swapped = threading.Event()
    swap_at = [0.0]

    def on_swap(info):
        swap_at[0] = time.perf_counter()
        swapped.set()

    def load(path):
        with open(path, "rb") as f:
            return f.read()

    lat = []
    follower = modelreg.ModelRegistry(follower_root)
    with modelreg.ProductionModelLoader(follower, "risk_model", load, consumer_id="bench@follower",
                                        poll_interval=poll_interval, on_swap=on_swap) as loader:
        for i in range(rounds + 2):
            version = "v2.0.0" if loader.version == "v1.0.0" else "v1.0.0"
            swapped.clear()
            t0 = time.perf_counter()
            remote.promote_model("risk_model", version, reason="bench")
            while True:
                if not swapped.wait(30):
                    raise SystemExit(f"no swap to {version} on the follower within 30 s")
                if loader.version == version:
                    break
                swapped.clear()
            if i >= 2:
                lat.append((swap_at[0] - t0) * 1000)
    return lat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modelreg", default="build/tools/modelreg/modelreg")
    ap.add_argument("--nats-server", default=shutil.which("nats-server") or "/usr/sbin/nats-server")
    ap.add_argument("--rounds", type=int, default=200, help="promotes per mode")
    ap.add_argument("--lag-rounds", type=int, default=50)
    ap.add_argument("--poll-interval", type=float, default=0.02,
                    help="the follower's loader poll interval, seconds")
    args = ap.parse_args()
    warnings.simplefilter("ignore", modelreg.RegistryWarning)
    os.environ.setdefault("MODELREG_ACTOR", "bench")
    binary = str(Path(args.modelreg).resolve())

    with tempfile.TemporaryDirectory(prefix="replication-bench-") as t:
        tmp = Path(t)
        nats, urls = start_cluster(tmp, args.nats_server)
        servers, followers = [], []
        env = dict(os.environ, MODELREG_JWT_SECRET=secrets.token_hex(32))
        try:
            rows = []
            for mode in ("local", "sync", "async"):
                root = tmp / mode
                prepare(binary, root, tmp)
                if mode != "local":
                    run([binary, "--root", str(root), "replication", "enable", "--nats", urls,
                         "--stream", f"bench-{mode}", "--mode", mode])
                p, remote = serve(binary, root, env)
                servers.append(p)
                rate, lat = throughput(remote, args.rounds)
                rows.append((mode, rate, lat))
                if mode == "sync":
                    sync_remote = remote
            froot = tmp / "follower"
            f = subprocess.Popen([binary, "--root", str(froot), "follow", "--nats", urls,
                                  "--stream", "bench-sync", "--artifacts-from", str(tmp / "sync")],
                                 stdout=open(tmp / "follow.log", "w"), stderr=subprocess.STDOUT)
            followers.append(f)
            deadline = time.monotonic() + 120
            while "caught up" not in (tmp / "follow.log").read_text():
                if f.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("follow: " + (tmp / "follow.log").read_text())
                time.sleep(0.05)
            lag = follower_lag(sync_remote, froot, args.lag_rounds, args.poll_interval)
        finally:
            for p in servers + followers:
                p.terminate()
                p.wait(timeout=30)
            for p in nats:
                p.terminate()
                p.wait(timeout=30)

    print(f"durable promotes through `modelreg serve`, one client, {args.rounds} per mode; "
          f"3-node NATS cluster (R3) on loopback\n")
    print("| mode | promotes/s | p50 | p99 |")
    print("|---|---|---|---|")
    for mode, rate, lat in rows:
        print(f"| {mode} | {rate:.0f} | {percentile(lat, 50):.2f} ms | {percentile(lat, 99):.2f} ms |")
    print(f"\npromote on the sync leader -> swap in a loader on a follower, {args.lag_rounds} rounds "
          f"(loader poll interval {args.poll_interval * 1000:.0f} ms)\n")
    print("| p50 | p99 | max |")
    print("|---|---|---|")
    print(f"| {percentile(lag, 50):.1f} ms | {percentile(lag, 99):.1f} ms | {max(lag):.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
