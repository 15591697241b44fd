"""A scripted history for the web page's tests and screenshots: two model
names, promotions, a promotion refused by the gates, an override, a
rollback with a failure, a failed version, and a reason that tries to
inject script. Written with the real `modelreg` CLI into a fresh registry;
then `modelreg serve` is started on it (stopped by stop_server)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Dict, List

INJECTED = "<script>window.__pwned=1</script> first model <img src=x onerror=window.__pwned=2>"
POLICY = '[default]\nic = "> 0.02"\nsharpe = "> 0.5"\npaper_trading_hours = "off"\n'


class Registry:
    def __init__(self, modelreg: str, root: Path) -> None:
        self.bin = modelreg
        self.root = root
        self.env = dict(os.environ, MODELREG_JWT_SECRET=secrets.token_hex(32),
                        MODELREG_ACTOR="quant-team")
        self.env.pop("MODELREG_TOKEN", None)
        self.server = None
        self.url = ""

    def run(self, *args: str, ok=(0,), env: Dict[str, str] | None = None) -> str:
        p = subprocess.run([self.bin, "--root", str(self.root), *args], capture_output=True,
                           text=True, env={**self.env, **(env or {})}, timeout=120)
        if p.returncode not in ok:
            raise AssertionError(f"modelreg {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.run("--json", *args))

    def token(self, scope: str, sub: str = "viewer") -> str:
        return self.run("token", "issue", "--sub", sub, "--scope", scope, "--ttl", "1h").strip()

    def start_server(self) -> str:
        log = open(self.root.parent / "serve.log", "w")
        self.server = subprocess.Popen([self.bin, "--root", str(self.root), "serve", "--listen",
                                        "127.0.0.1:0", "--exit-after", "600"], env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.server.poll() is not None:
                raise AssertionError("serve exited: " + (self.root.parent / "serve.log").read_text())
            try:
                self.url = json.loads((self.root / "server.json").read_text())["url"]
                return self.url
            except (OSError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    raise AssertionError("serve did not write server.json")
                time.sleep(0.02)

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            self.server.wait(timeout=30)


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def build(modelreg: str, workdir: Path) -> Registry:
    """Writes the history; returns the registry with `instants`: a dict of
    ISO times between its steps."""
    root = workdir / "registry"
    root.mkdir(parents=True)
    (root / "policy.toml").write_text(POLICY)
    reg = Registry(modelreg, root)
    art = workdir / "artifacts"
    art.mkdir()
    models: List[tuple] = [
        ("risk_model", "v1.0.0", 0.05, 1.20, -0.10), ("risk_model", "v1.1.0", 0.06, 1.45, -0.08),
        ("risk_model", "v1.2.0", 0.01, 0.40, -0.30), ("risk_model", "v1.3.0", 0.07, 1.10, -0.12),
        ("alpha_weights", "v2.0.0", 0.04, 0.90, -0.15),
    ]
    for mtype, version, ic, sharpe, dd in models:
        f = art / f"{mtype}-{version}.bin"
        f.write_bytes(os.urandom(2048))
        reg.run("register", mtype, str(f), "--version", version, "--metric", f"ic={ic}",
                "--metric", f"sharpe={sharpe}", "--metric", f"max_drawdown={dd}",
                "--dataset", "crsp=v1.2.3", "--snapshot", "snap_20240101", "--factor", "momentum",
                "--factor", "value", "--param", "halflife_days=60")
    reg.run("--reason", INJECTED, "promote", "risk_model", "v1.0.0")
    reg.run("--reason", "weekly combination", "promote", "alpha_weights", "v2.0.0")
    time.sleep(0.01)
    reg.instants = {"after_first": iso(time.time())}
    time.sleep(0.01)
    reg.run("--reason", "weekly retrain", "promote", "risk_model", "v1.1.0",
            "--expect-current", "v1.0.0")
    reg.run("--reason", "try the new factor", "promote", "risk_model", "v1.2.0", ok=(8,))
    reg.run("--reason", "desk head signed off", "promote", "risk_model", "v1.2.0",
            "--override-gates")
    reg.run("--reason", "losing money", "rollback", "risk_model", "--fail")
    reg.run("--reason", "does not load", "fail", "risk_model", "v1.3.0")
    reg.run("annotate", "risk_model", "v1.1.0", "--tag", "desk=equities", "--reason", "live")
    time.sleep(0.01)
    reg.instants["end"] = iso(time.time())
    return reg
