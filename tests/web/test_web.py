"""The web page (docs/web.md) in a real browser: Debian's headless chromium,
driven through the DevTools protocol (cdp.py), against a real `modelreg
serve` on a temporary registry with a scripted history (history.py). Every
check compares the page with what the CLI prints for the same question."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

import cdp
import history

MODELREG_BIN = os.environ.get("MODELREG_BIN", "")


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    if not MODELREG_BIN:
        pytest.fail("MODELREG_BIN is not set (run with `meson test web`)")
    r = history.build(MODELREG_BIN, tmp_path_factory.mktemp("web"))
    r.start_server()
    yield r
    r.stop_server()


@pytest.fixture(scope="module")
def page(reg):
    if cdp.find_chromium() is None:
        pytest.fail("chromium is not installed: these tests need Debian's chromium "
                    "(tools/install-deps installs it)")
    b = cdp.Browser()
    b.navigate(reg.url + "/")
    b.wait("document.getElementById('token-form')", what="the token form")
    b.eval("sessionStorage.setItem('modelreg.token', %s)" % json.dumps(reg.token("model:read")))
    yield b
    b.close()


def open_view(b: cdp.Browser, reg, route: str, ready: str) -> None:
    b.navigate(reg.url + "/" + route)
    b.wait(ready, what=f"{ready} on {route}")


def test_security_headers_and_no_token(reg):
    with urllib.request.urlopen(reg.url + "/") as r:
        headers = r.headers
        body = r.read().decode()
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "<script src=\"/ui/app.js\"" in body and "onclick" not in body
    for path, kind in (("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")):
        with urllib.request.urlopen(reg.url + path) as r:
            assert r.headers["Content-Type"].startswith(kind)


def test_overview_lists_production(page, reg):
    open_view(page, reg, "#/", "document.querySelector('#overview')")
    expected = {m["model_type"]: m["production"] or "none"
                for m in reg.json("audit", "--at", "now")["models"]}
    shown = page.eval("Object.fromEntries([...document.querySelectorAll('#overview tr[data-model]')]"
                      ".map(r => [r.dataset.model, r.querySelector('.production').innerText.trim()]))")
    assert shown == expected
    assert shown["risk_model"] == "v1.1.0" and shown["alpha_weights"] == "v2.0.0"


def post(reg, path: str, body: dict, token: str) -> dict:
    req = urllib.request.Request(reg.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def test_overview_highlights_a_lagging_consumer(page, reg):
    read = reg.token("model:read", sub="pricing")
    post(reg, "/api/v1/models/risk_model/consumers/pricing@host-1/ack",
         {"version": "v1.0.0", "ok": True}, read)
    post(reg, "/api/v1/models/alpha_weights/consumers/signals@host-2/ack",
         {"version": "v2.0.0", "ok": True}, read)
    open_view(page, reg, "#/", "document.querySelector('#overview')")
    page.wait("document.querySelector('#overview tr[data-model=risk_model] .lagging-consumer')",
              what="the lagging consumer")
    cli = {c["consumer_id"]: c for c in reg.json("consumers", "risk_model")["consumers"]}
    assert cli["pricing@host-1"]["current"] is False
    row = page.eval("document.querySelector('#overview tr[data-model=risk_model]').innerText")
    assert "pricing@host-1 runs v1.0.0" in row
    assert page.eval("document.querySelector('#overview tr[data-model=risk_model]')"
                     ".classList.contains('lagging')")
    assert not page.eval("document.querySelector('#overview tr[data-model=alpha_weights]')"
                         ".classList.contains('lagging')")
    assert "1 on v2.0.0" in page.eval(
        "document.querySelector('#overview tr[data-model=alpha_weights]').innerText")


def test_diff_view_matches_cli(page, reg):
    start, end = reg.instants["after_first"], reg.instants["end"]
    open_view(page, reg, f"#/diff?from={start}&to={end}", "document.querySelector('#diff')")
    cli = reg.json("diff", "--from", start, "--to", end)
    shown = page.eval("Object.fromEntries([...document.querySelectorAll('#diff tbody tr')]"
                      ".map(r => [r.cells[0].innerText, [r.cells[1].innerText, r.cells[2].innerText]]))")
    assert shown == {t: [v["from"] or "—", v["to"] or "—"] for t, v in cli["production"].items()}


def test_audit_view_matches_cli(page, reg):
    at = reg.instants["after_first"]
    open_view(page, reg, "#/audit?at=" + at, "document.querySelector('#audit-as-of')")
    cli = reg.json("audit", "--at", at)
    shown = page.eval("Object.fromEntries([...document.querySelectorAll('.audit-model')]"
                      ".map(d => [d.dataset.model, d.querySelector('.production').innerText]))")
    assert shown == {m["model_type"]: m["production"] or "nothing in production"
                     for m in cli["models"]}
    assert f"event #{cli['seq']}," in page.eval("document.querySelector('#audit-as-of').innerText")
    # The instant is in the URL: the link reproduces the view.
    assert page.eval("location.hash").endswith(at)
    # The injected reason of that promotion is shown as text, and ran nothing.
    text = page.eval("document.querySelector('.audit-model[data-model=risk_model]').innerText")
    assert history.INJECTED in text
    assert page.eval("window.__pwned === undefined")
    assert page.eval("document.scripts.length") == 1
    assert page.eval("document.querySelectorAll('main img').length") == 0


def test_timeline_has_a_mark_per_promotion_and_rollback(page, reg):
    open_view(page, reg, "#/model/risk_model", "document.querySelector('#timeline')")
    hist = reg.json("history", "risk_model")["history"]
    count = lambda sel: page.eval(f"document.querySelectorAll('#timeline {sel}').length")
    assert count(".mark-promotion") + count(".mark-override") + count(".mark-rollback") == len(hist)
    assert count(".mark-override") == sum(1 for h in hist if h["gates_overridden"])
    assert count(".mark-rollback") == sum(1 for h in hist if h["kind"] == "rollback")
    events = [json.loads(line) for line in reg.run("--json", "events", "--type",
                                                   "risk_model").splitlines()]
    assert count(".mark-rejected") == sum(1 for e in events if e["type"] == "PromotionRejected")
    assert count(".mark-failure") == sum(1 for e in events if e["type"] == "ModelFailed")
    # The injected reason in the history table: text, not markup.
    assert history.INJECTED in page.eval("document.querySelector('#history').innerText")
    assert page.eval("window.__pwned === undefined")


def test_versions_sort_by_a_metric(page, reg):
    open_view(page, reg, "#/model/risk_model", "document.querySelector('#versions')")
    page.eval("document.querySelector('#versions th[data-col=sharpe]').click()")
    order = page.eval("[...document.querySelectorAll('#versions tbody tr')].map(r => r.dataset.version)")
    cli = [v["version"] for v in reg.json("list", "risk_model", "--sort", "sharpe")["versions"]]
    assert order == cli


def test_version_page_shows_provenance(page, reg):
    open_view(page, reg, "#/model/risk_model/v1.1.0", "document.querySelector('#artifact-sha256')")
    shown = reg.json("show", "risk_model", "v1.1.0")
    assert page.eval("document.querySelector('#artifact-sha256').innerText") == shown["artifact_sha256"]
    text = page.eval("document.querySelector('main').innerText")
    for needle in ("snap_20240101", "crsp", "v1.2.3", "halflife_days", "momentum", "desk",
                   shown["registration"]["config_hash"] or "config hash"):
        assert needle in text


def test_integrity_view(page, reg):
    open_view(page, reg, "#/integrity", "document.querySelector('#verify-result')")
    assert page.wait("document.querySelector('#verify-result').innerText") == "OK"
    head = page.eval("document.querySelector('#head-hash').innerText")
    assert len(head) == 64


def test_page_follows_a_promotion_made_by_the_cli(page, reg):
    open_view(page, reg, "#/", "document.querySelector('#overview tr[data-model=risk_model]')")
    page.eval("window.__still_the_same_page = 1")
    before = page.eval("document.querySelector('#overview tr[data-model=risk_model] .production')"
                       ".innerText")
    assert before == "v1.1.0"
    # Through the server (it holds the registry), as another process.
    reg.run("--reason", "back to the first model", "promote", "risk_model", "v1.0.0",
            env={"MODELREG_TOKEN": reg.token("model:write", sub="ops")})
    page.wait("document.querySelector('#overview tr[data-model=risk_model] .production')"
              ".innerText === 'v1.0.0'", timeout=30, what="the overview to show v1.0.0")
    assert page.eval("window.__still_the_same_page") == 1, "the page was reloaded"


def test_a_refused_token_asks_again(reg):
    b = cdp.Browser()
    try:
        b.navigate(reg.url + "/")
        b.wait("document.getElementById('token-form')")
        b.eval("sessionStorage.setItem('modelreg.token', 'not-a-token')")
        b.navigate(reg.url + "/#/integrity")
        text = b.wait("document.querySelector('#token-form') && "
                      "document.querySelector('main .error') && "
                      "document.querySelector('main .error').innerText")
        assert "refused the token" in text
    finally:
        b.close()


def test_audit_view_prints_without_controls(page, reg):
    open_view(page, reg, "#/audit?at=" + reg.instants["end"], "document.querySelector('#audit-as-of')")
    page.send("Emulation.setEmulatedMedia", {"media": "print"}, session=True)
    try:
        hidden = page.eval("['#nav', '#signout', '#live', '#audit-form button']"
                           ".map(s => getComputedStyle(document.querySelector(s)).display)")
        assert hidden == ["none"] * 4
        assert page.eval("getComputedStyle(document.querySelector('.audit-model')).display") != "none"
        pdf = page.send("Page.printToPDF", {}, session=True)["data"]
        assert len(pdf) > 1000
    finally:
        page.send("Emulation.setEmulatedMedia", {"media": ""}, session=True)


def test_the_date_picker_fills_a_utc_instant(page, reg):
    open_view(page, reg, "#/audit", "document.querySelector('#audit-form')")
    page.eval("(() => { const p = document.querySelector('#audit-form input[type=datetime-local]');"
              " p.value = '2024-01-15T14:30'; p.dispatchEvent(new Event('change')); })()")
    assert page.eval("document.querySelector('#at').value") == "2024-01-15T14:30:00Z"
    page.eval("document.querySelector('#audit-form button').click()")
    page.wait("location.hash === '#/audit?at=2024-01-15T14%3A30%3A00Z' && "
              "document.querySelector('#audit-as-of')", what="the audit at the picked instant")
    # Before the first event: nothing in production anywhere.
    assert page.eval("[...document.querySelectorAll('.audit-model .production')]"
                     ".every(e => e.innerText === 'nothing in production')")
