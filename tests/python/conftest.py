"""Fixtures of the Python package's tests: fresh registries in temporary
directories, the real `modelreg` binary, and a real `modelreg serve`.

Run by meson (`meson test python`), which sets PYTHONPATH to the built
package and MODELREG_BIN to the CLI. Nothing here sleeps for a fixed time:
every wait is for a condition (a file, a line, a version) with a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

MODELREG_BIN = os.environ.get("MODELREG_BIN", "")

# The gates of these tests: the spec's IC and Sharpe thresholds, no
# paper-trading time (a test cannot wait 24 hours).
POLICY = """
[default]
ic = "> 0.02"
sharpe = "> 0.5"
paper_trading_hours = "off"
"""


def wait_for(condition, timeout: float, what: str, step: float = 0.02):
    """Polls `condition()` until it returns something truthy; fails naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


class Cli:
    """The real `modelreg` CLI on one registry directory."""

    def __init__(self, root: Path, env: Dict[str, str]) -> None:
        if not MODELREG_BIN or not Path(MODELREG_BIN).exists():
            raise RuntimeError("MODELREG_BIN does not name the built modelreg binary "
                               "(run these tests with `meson test python`)")
        self.root = root
        self.env = env

    def run(self, *args: str, check: bool = True, extra_env: Dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        env = dict(self.env)
        env.update(extra_env or {})
        p = subprocess.run([MODELREG_BIN, "--root", str(self.root), *args], env=env,
                           capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"modelreg {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def json(self, *args: str, **kw: Any) -> Any:
        p = self.run("--json", *args, **kw)
        return json.loads(p.stdout)


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def env(secret: str) -> Dict[str, str]:
    e = dict(os.environ)
    e["MODELREG_JWT_SECRET"] = secret
    e["MODELREG_ACTOR"] = "pytest"
    e.pop("MODELREG_TOKEN", None)
    e.pop("MODELREG_URL", None)
    return e


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def cli(root: Path, env: Dict[str, str]) -> Cli:
    return Cli(root, env)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(POLICY)
    return p


def make_artifact(directory: Path, name: str, content: bytes | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / name
    p.write_bytes(content if content is not None else os.urandom(256))
    return p


@pytest.fixture
def artifacts(tmp_path: Path):
    return lambda name, content=None: make_artifact(tmp_path / "artifacts", name, content)


@pytest.fixture
def registry(root: Path, cli: Cli, policy_file: Path, monkeypatch: pytest.MonkeyPatch):
    """An embedded ModelRegistry on a fresh directory with the test policy."""
    import modelreg
    monkeypatch.setenv("MODELREG_ACTOR", "pytest")
    monkeypatch.delenv("MODELREG_TOKEN", raising=False)
    # The first write adopts <root>/policy.toml as the gate policy (docs/gates.md).
    root.mkdir(parents=True, exist_ok=True)
    (root / "policy.toml").write_text(policy_file.read_text())
    return modelreg.ModelRegistry(root)


class Server:
    """A real `modelreg serve` on 127.0.0.1 (a free port), stopped by the test."""

    def __init__(self, cli: Cli, *extra: str) -> None:
        self.cli = cli
        log = cli.root.parent / "serve.log"
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [MODELREG_BIN, "--root", str(cli.root), "serve", "--listen", "127.0.0.1:0", *extra],
            env=cli.env, stdout=self.log, stderr=subprocess.STDOUT)
        server_json = cli.root / "server.json"

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: "
                                     f"{Path(log).read_text()}")
            try:
                return json.loads(server_json.read_text()).get("url")
            except (OSError, ValueError):
                return None

        self.url = wait_for(up, 60, "server.json of modelreg serve")

    def token(self, *scopes: str, sub: str = "alice") -> str:
        args = ["token", "issue", "--sub", sub, "--ttl", "1h"]
        for s in scopes:
            args += ["--scope", s]
        return self.cli.run(*args).stdout.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def serve(cli: Cli, registry):
    """Starts `modelreg serve` on the test registry (policy set first)."""
    servers: List[Server] = []

    def start(*extra: str) -> Server:
        s = Server(cli, *extra)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def python_env(env: Dict[str, str]) -> Dict[str, str]:
    """The environment for a child Python process that imports modelreg."""
    e = dict(env)
    e["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return e
