"""A small Chrome DevTools Protocol client over --remote-debugging-pipe, with
Python's standard library only: starts Debian's headless `chromium`, opens
one page, evaluates JavaScript in it, waits for conditions and takes
screenshots. Used by the web page's tests (test_web.py) and by
tools/web-screenshots. Chromium reads commands from its fd 3 and writes
replies and events to its fd 4, each a JSON text ended by a NUL byte.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional


def find_chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    """Headless Chromium with one page (a tab). Stop it with close()."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0) -> None:
        exe = find_chromium()
        if exe is None:
            raise FileNotFoundError("chromium is not installed (tools/install-deps installs it)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="modelreg-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # in the child: its fd 3 and 4 are the pipes
            # Moved above 10 first (either may be 3 or 4 already), then onto
            # 3 and 4 without close-on-exec.
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3, inheritable=True)
            os.dup2(high_w, 4, inheritable=True)

        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", "--disable-default-apps", "--disable-dev-shm-usage",
             "--metrics-recording-only", "--mute-audio", "--hide-scrollbars",
             "--window-size=%d,%d" % (width, height), "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._replies: Dict[int, Dict[str, Any]] = {}
        self.events: List[Dict[str, Any]] = []
        self._cv = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target,
                                                          "flatten": True})["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Runtime.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=True)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cv:
                    self._closed = True
                    self._cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cv:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cv.notify_all()

    def send(self, method: str, params: Optional[Dict[str, Any]] = None,
             session: bool = False) -> Dict[str, Any]:
        with self._cv:
            self._next_id += 1
            mid = self._next_id
        msg: Dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cv:
            while mid not in self._replies:
                if self._closed:
                    raise CdpError(f"chromium exited during {method}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CdpError(f"no answer to {method} within {self.timeout} s")
                self._cv.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait("document.readyState === 'complete' && location.href === " + json.dumps(url),
                  what="the page at " + url)

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaiting a promise)."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True}, session=True)
        if "exceptionDetails" in r:
            raise CdpError(f"{expression}: {r['exceptionDetails'].get('text')} "
                           f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r.get("result", {}).get("value")

    def wait(self, expression: str, timeout: Optional[float] = None, what: str = "") -> Any:
        """Polls a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        # A DOM node has no JSON value: it counts as found.
        probe = "(() => { const v = (%s); return v instanceof Node ? true : v; })()" % expression
        while True:
            try:
                value = self.eval(probe)
            except CdpError:
                value = None  # a navigation in progress
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
                raise AssertionError(f"timed out waiting for {what or expression}; the page "
                                     f"shows:\n{text}")
            time.sleep(0.05)

    def screenshot(self, path: str, full_page: bool = True) -> None:
        params: Dict[str, Any] = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": m["width"], "height": m["height"],
                              "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params, session=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close")
                except CdpError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._to_chrome, self._from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)
