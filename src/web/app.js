// modelreg web page (docs/web.md): a read-only view of the registry through
// its HTTP API, with the read token the user gives once per tab.
//
// Every string from the registry is put into the page as text (textContent,
// createTextNode, SVG <title> text), never as HTML; the server's
// Content-Security-Policy allows only this script and this stylesheet.
"use strict";

(function () {
  const TOKEN_KEY = "modelreg.token";
  const main = document.getElementById("main");
  const live = document.getElementById("live");
  const signout = document.getElementById("signout");
  let head = 0;           // the last event seq this page has seen
  let renderSeq = 0;      // drops answers of superseded renders
  let lastEvent = null;   // shown in the live indicator

  // ---------------------------------------------------------------- DOM
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = String(v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.setAttribute("class", v);
      else if (k === "text") e.textContent = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children) if (c) e.appendChild(c);
    return e;
  }
  function show(...nodes) {
    main.replaceChildren(...nodes.flat().filter(Boolean));
  }
  function time(t) {
    if (!t) return "—";
    return String(t).replace("T", " ").replace(/\.(\d{3})\d*Z$/, ".$1Z").replace(/Z$/, " UTC");
  }
  function modelLink(type, version) {
    const href = "#/model/" + encodeURIComponent(type) +
        (version ? "/" + encodeURIComponent(version) : "");
    return el("a", { href, text: version || type });
  }
  function gateBadges(gates, overridden) {
    const out = (gates || []).map((g) => el("span", {
      class: "badge " + (g.passed ? "pass" : "fail"),
      title: (g.detail || "") + (g.threshold !== undefined ? " (threshold " + g.comparison + " " + g.threshold + ")" : ""),
      text: (g.passed ? "✓ " : "✗ ") + g.name + (g.observed === null || g.observed === undefined ? "" : " " + g.observed),
    }));
    if (overridden) out.push(el("span", { class: "badge override", text: "gates overridden" }));
    return out.length ? out : [el("span", { class: "muted", text: "no gates recorded" })];
  }

  // ---------------------------------------------------------------- API
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }
  async function api(path) {
    const res = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = (body && body.error) || {};
      throw new ApiError(res.status, err.code || String(res.status), err.message || res.statusText);
    }
    return body;
  }
  async function pages(path, key) {
    let rows = [];
    let cursor = null;
    for (;;) {
      const sep = path.includes("?") ? "&" : "?";
      const ans = await api(path + (cursor ? sep + "cursor=" + encodeURIComponent(cursor) : ""));
      rows = rows.concat(ans[key] || []);
      cursor = ans.next;
      if (!cursor) return rows;
    }
  }
  async function allEvents() {
    let rows = [];
    let after = 0;
    for (;;) {
      const ans = await api("/api/v1/events?limit=1000&after=" + after);
      const evs = ans.events || [];
      rows = rows.concat(evs);
      if (evs.length < 1000) return rows;
      after = evs[evs.length - 1].seq;
    }
  }

  // ---------------------------------------------------------------- token
  function askToken(message) {
    signout.hidden = true;
    const input = el("input", { type: "password", id: "token", autocomplete: "off", size: 60,
                                placeholder: "eyJ…", required: true });
    const form = el("form", { class: "inline", id: "token-form" },
      el("label", { for: "token", text: "Read token (scope model:read):" }), input,
      el("button", { type: "submit", text: "Open" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      start();
    });
    show(el("h1", { text: "Sign in" }),
      message ? el("p", { class: "error", text: message }) : null,
      el("p", { text: "The page reads the registry through its HTTP API with a bearer token. " +
        "It keeps the token for this tab only (sessionStorage). Get one with " }),
      el("p", { class: "mono", text: "modelreg token issue --sub NAME --scope model:read --ttl 8h" }),
      form);
    input.focus();
  }
  signout.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    askToken("");
  });

  function failed(e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken("The server refused the token: " + e.message);
      return;
    }
    show(el("p", { class: "error", id: "error", text: (e && e.message) || String(e) }));
  }

  // ---------------------------------------------------------------- views
  async function overview(seq) {
    const audit = await api("/api/v1/audit?at=now");
    const consumers = {};
    await Promise.all(audit.models.map(async (m) => {
      try { consumers[m.model_type] = await api("/api/v1/models/" + encodeURIComponent(m.model_type) + "/consumers"); }
      catch (e) { consumers[m.model_type] = null; }
    }));
    if (seq !== renderSeq) return;
    const rows = audit.models.map((m) => {
      const p = m.promotion;
      const c = consumers[m.model_type];
      const lagging = c ? c.consumers.filter((x) => !x.current) : [];
      const running = c ? c.consumers.filter((x) => x.current) : [];
      const consumerCell = !c || c.consumers.length === 0
        ? el("span", { class: "muted", text: "none reported" })
        : el("div", {},
            el("div", { class: running.length ? "ok" : "", text: running.length + " on " + (m.production || "—") }),
            lagging.map((x) => el("div", { class: "bad lagging-consumer",
              text: x.consumer_id + " runs " + (x.version || "nothing") +
                (x.ok ? "" : " (failed to load " + (x.attempted_version || "?") + ")") +
                ", behind " + Math.round(x.behind_seconds) + " s" })));
      return el("tr", { class: lagging.length ? "lagging" : null, "data-model": m.model_type },
        el("td", {}, modelLink(m.model_type)),
        el("td", { class: "production" }, m.production ? modelLink(m.model_type, m.production) : el("span", { class: "muted", text: "none" })),
        el("td", {}, p ? time(p.at) : "—"),
        el("td", {}, p ? p.actor : "—"),
        el("td", {}, p ? (p.kind === "rollback" ? "rollback: " : "") + p.reason : "—"),
        el("td", {}, p ? gateBadges(p.gates, p.gates_overridden) : "—"),
        el("td", { class: "consumer-version" }, consumerCell));
    });
    show(el("h1", { text: "Production now" }),
      el("p", { class: "muted", text: "As of event #" + audit.seq + " (" + time(audit.at) + ")." }),
      el("table", { id: "overview" },
        el("thead", {}, el("tr", {}, ["Model", "Production", "Since", "By", "Why", "Gates of that promotion", "Consumers"].map((h) => el("th", { text: h })))),
        el("tbody", {}, rows)));
  }

  function eventKind(ev) {
    switch (ev.type) {
      case "ModelPromoted": return ev.payload.gates_overridden ? "override" : "promotion";
      case "ModelRolledBack": return "rollback";
      case "ModelFailed": return "failure";
      case "PromotionRejected": return "rejected";
      case "ModelRegistered": return "registered";
      default: return null;
    }
  }
  function eventText(ev) {
    const p = ev.payload || {};
    switch (ev.type) {
      case "ModelPromoted": return "#" + ev.seq + " promoted " + p.version + " by " + ev.actor + ": " + p.reason +
          (p.gates_overridden ? " (GATES OVERRIDDEN: " + p.override_reason + ")" : "");
      case "ModelRolledBack": return "#" + ev.seq + " rolled back " + p.from_version + " → " + p.to_version + " by " + ev.actor + ": " + p.reason;
      case "ModelFailed": return "#" + ev.seq + " " + p.version + " failed (" + ev.actor + "): " + p.reason;
      case "PromotionRejected": return "#" + ev.seq + " promotion of " + p.version + " refused by the gates (" + ev.actor + "): " + p.reason;
      case "ModelRegistered": return "#" + ev.seq + " registered " + p.version + " by " + ev.actor;
      case "ModelArchived": return "#" + ev.seq + " archived " + p.version + " (" + ev.actor + "): " + p.reason;
      default: return "#" + ev.seq + " " + ev.type + " by " + ev.actor;
    }
  }

  function timeline(events) {
    const marks = events.filter((e) => eventKind(e));
    const W = 1000, H = 120, L = 20, R = 980, Y = 60;
    const g = svg("svg", { class: "timeline", id: "timeline", viewBox: "0 0 " + W + " " + H,
                           preserveAspectRatio: "none", role: "img" });
    g.appendChild(svg("title", { text: "Timeline of promotions, rollbacks, failures and rejected promotions" }));
    g.appendChild(svg("line", { class: "axis", x1: L, y1: Y, x2: R, y2: Y }));
    if (marks.length === 0) return g;
    const ts = marks.map((e) => Date.parse(e.recorded_at));
    const t0 = Math.min(...ts), t1 = Math.max(...ts);
    const span = Math.max(1, t1 - t0);
    const rows = { registered: 95, promotion: 40, override: 40, rollback: 40, failure: 80, rejected: 80 };
    marks.forEach((e, i) => {
      const kind = eventKind(e);
      const x = marks.length === 1 ? (L + R) / 2 : L + (R - L) * (ts[i] - t0) / span;
      const y = rows[kind];
      const shape = kind === "override" || kind === "rejected"
        ? svg("rect", { x: x - 6, y: y - 6, width: 12, height: 12, transform: "rotate(45 " + x + " " + y + ")" })
        : svg("circle", { cx: x, cy: y, r: kind === "registered" ? 4 : 7 });
      shape.setAttribute("class", "mark mark-" + kind);
      shape.setAttribute("data-seq", String(e.seq));
      shape.appendChild(svg("title", { text: time(e.recorded_at) + " " + eventText(e) }));
      g.appendChild(shape);
    });
    g.appendChild(svg("text", { x: L, y: H - 4, text: time(marks[0].recorded_at) }));
    g.appendChild(svg("text", { x: R, y: H - 4, "text-anchor": "end", text: time(marks[marks.length - 1].recorded_at) }));
    return g;
  }

  function legend() {
    const items = [["promotion", "promotion"], ["override", "promotion with gates overridden"],
                   ["rollback", "rollback"], ["failure", "failed"], ["rejected", "refused by the gates"],
                   ["registered", "registered"]];
    return el("p", { class: "legend" }, items.map(([k, t]) => el("span", {}, el("i", { class: "mark-" + k }), t)));
  }

  function sortableTable(id, columns, rows) {
    // columns: [{title, value(row) -> sortable value, cell(row) -> node/text, num}]
    const table = el("table", { id });
    const tbody = el("tbody");
    let sortBy = -1, desc = true;
    const ths = columns.map((c, i) => el("th", { class: "sortable", "data-col": c.title, text: c.title,
      onclick: () => { desc = sortBy === i ? !desc : true; sortBy = i; render(); } }));
    function render() {
      const sorted = rows.slice();
      if (sortBy >= 0) {
        const v = columns[sortBy].value;
        sorted.sort((a, b) => {
          const x = v(a), y = v(b);
          if (x === y) return 0;
          if (x === null || x === undefined) return 1;   // missing values last
          if (y === null || y === undefined) return -1;
          return (x < y ? -1 : 1) * (desc ? -1 : 1);
        });
      }
      ths.forEach((th, i) => { th.classList.toggle("sorted-desc", i === sortBy && desc); th.classList.toggle("sorted-asc", i === sortBy && !desc); });
      tbody.replaceChildren(...sorted.map((r) => el("tr", { "data-version": r.version },
        columns.map((c) => el("td", { class: c.num ? "num" : null }, c.cell(r))))));
    }
    table.appendChild(el("thead", {}, el("tr", {}, ths)));
    table.appendChild(tbody);
    render();
    return table;
  }

  async function model(seq, type) {
    const enc = encodeURIComponent(type);
    const [versions, history, events] = await Promise.all([
      pages("/api/v1/models/" + enc, "versions"), pages("/api/v1/models/" + enc + "/history", "history"), allEvents()]);
    if (seq !== renderSeq) return;
    const mine = events.filter((e) => e.payload && e.payload.model_type === type);
    const metricNames = [...new Set(versions.flatMap((v) => Object.keys(v.effective_metrics || v.metrics || {})))].sort();
    const metric = (v, m) => { const x = (v.effective_metrics || v.metrics || {})[m]; return typeof x === "number" ? x : null; };
    const columns = [
      { title: "version", value: (v) => v.version, cell: (v) => modelLink(type, v.version) },
      { title: "status", value: (v) => v.status, cell: (v) => el("span", { class: "status-" + v.status, text: v.status }) },
      { title: "registered", value: (v) => v.registered_at, cell: (v) => time(v.registered_at) },
      ...metricNames.map((m) => ({ title: m, num: true, value: (v) => metric(v, m),
        cell: (v) => { const x = metric(v, m); return x === null ? "—" : String(x); } })),
      { title: "tags", value: (v) => JSON.stringify((v.annotations || {}).tags || {}),
        cell: (v) => Object.entries((v.annotations || {}).tags || {}).map(([k, t]) => el("span", { class: "badge", text: k + "=" + t })) },
    ];
    show(el("h1", {}, "Model ", el("span", { class: "mono", text: type })),
      el("h2", { text: "Timeline" }), legend(), timeline(mine),
      el("h2", { text: "Versions" }),
      el("p", { class: "muted", text: "Click a column to sort (descending first); versions without a metric sort last." }),
      sortableTable("versions", columns, versions),
      el("h2", { text: "Promotions and rollbacks" }),
      el("table", { id: "history" },
        el("thead", {}, el("tr", {}, ["#", "When", "What", "Version", "Replaced", "By", "Why", "Gates"].map((h) => el("th", { text: h })))),
        el("tbody", {}, history.map((h) => el("tr", { class: h.gates_overridden ? "override" : null },
          el("td", { text: h.seq }), el("td", { text: time(h.at) }), el("td", { text: h.kind }),
          el("td", {}, modelLink(type, h.version)), el("td", { text: h.replaced_version || "—" }),
          el("td", { text: h.actor }), el("td", { text: h.reason }),
          el("td", {}, el("span", { text: h.gates_passed + "/" + h.gates_total + " passed" }),
            h.gates_overridden ? el("span", { class: "badge override", text: "overridden: " + h.override_reason }) : null))))),
      el("h2", { text: "Other events" }),
      el("ul", { id: "events" }, mine.filter((e) => ["ModelFailed", "PromotionRejected", "ModelArchived"].includes(e.type))
        .map((e) => el("li", { text: time(e.recorded_at) + " " + eventText(e) }))));
  }

  function kv(pairs) {
    return el("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
  }
  function jsonBlock(v) { return el("pre", { class: "json", text: JSON.stringify(v, null, 2) }); }

  async function version(seq, type, ver) {
    const enc = encodeURIComponent(type);
    const [rec, events] = await Promise.all([
      api("/api/v1/models/" + enc + "/" + encodeURIComponent(ver)), allEvents()]);
    if (seq !== renderSeq) return;
    const reg = rec.registration || {};
    const mine = events.filter((e) => e.payload && e.payload.model_type === type &&
      (e.payload.version === ver || e.payload.from_version === ver || e.payload.to_version === ver));
    show(el("h1", {}, el("a", { href: "#/model/" + enc, text: type }), " ", el("span", { class: "mono", text: ver })),
      kv([["status", el("span", { class: "status-" + rec.status, text: rec.status })],
          ["status reason", rec.status_reason || "—"],
          ["registered", time(rec.registered_at) + " by " + (reg.created_by || "—")],
          ["model id", el("span", { class: "mono", text: reg.model_id || "—" })],
          ["artifact", el("span", { class: "mono", text: (rec.artifact_path || "") + " (" + rec.artifact_size + " bytes)" })],
          ["artifact SHA-256", el("span", { class: "mono", id: "artifact-sha256", text: rec.artifact_sha256 })],
          ["config hash", el("span", { class: "mono", text: reg.config_hash || "—" })],
          ["snapshot", reg.snapshot_id || "—"],
          ["factors", (reg.factor_list || []).join(", ") || "—"]]),
      el("h2", { text: "Metrics" }), jsonBlock(rec.effective_metrics || reg.metrics || {}),
      el("h2", { text: "Datasets" }), jsonBlock(reg.dataset_version_ids || {}),
      el("h2", { text: "Parameters" }), jsonBlock(reg.parameters || {}),
      el("h2", { text: "Config" }), jsonBlock(reg.config === undefined ? null : reg.config),
      el("h2", { text: "Environment" }), jsonBlock(reg.env || {}),
      el("h2", { text: "Annotations" }), jsonBlock(rec.annotations || {}),
      el("h2", { text: "History of this version" }),
      el("ul", { id: "version-events" }, mine.map((e) => el("li", { text: time(e.recorded_at) + " " + eventText(e) }))));
  }

  function params() {
    const q = location.hash.split("?")[1] || "";
    return new URLSearchParams(q);
  }
  function instantInput(name, value) {
    // An ISO-8601 UTC instant, typed, or picked with the browser's date and
    // time picker (read as UTC, as the label says); the text is sent as it
    // is (the server parses it).
    const text = el("input", { name, id: name, value: value || "", size: 32,
                               placeholder: "2024-01-15T14:30:00Z or now, -2h" });
    const picker = el("input", { type: "datetime-local", step: 1, class: "no-print",
                                 "aria-label": name + " (UTC) picker", title: "pick a date and time (UTC)" });
    picker.addEventListener("change", () => {
      if (!picker.value) return;
      const v = picker.value.length === 16 ? picker.value + ":00" : picker.value;
      text.value = v + "Z";
    });
    return el("span", {}, text, " ", picker);
  }

  async function audit(seq) {
    const at = params().get("at");
    const form = el("form", { class: "inline", id: "audit-form" },
      el("label", { for: "at", text: "What was in production at (UTC):" }), instantInput("at", at),
      el("button", { type: "submit", text: "Show" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      location.hash = "#/audit?at=" + encodeURIComponent(form.elements.at.value.trim());
    });
    if (!at) {
      show(el("h1", { text: "Audit" }), el("p", { text: "Pick an instant: the answer is exactly what `modelreg audit --at` prints, from the events recorded up to it and nothing later." }), form);
      return;
    }
    const a = await api("/api/v1/audit?at=" + encodeURIComponent(at));
    if (seq !== renderSeq) return;
    const models = a.models.map((m) => {
      const p = m.promotion;
      return el("div", { class: "panel audit-model", "data-model": m.model_type },
        el("h2", {}, modelLink(m.model_type), ": ",
          el("span", { class: "production", text: m.production || "nothing in production" })),
        p ? kv([["since", time(p.at) + " (event #" + p.seq + ")"], ["by", p.actor],
                ["how", p.kind + (p.replaced_version ? " (replaced " + p.replaced_version + ")" : "")],
                ["why", p.reason], ["gates", el("span", {}, gateBadges(p.gates, p.gates_overridden))],
                ["override", p.gates_overridden ? p.override_reason : "—"],
                ["policy", el("span", { class: "mono", text: p.policy || "—" })],
                ["artifact SHA-256", el("span", { class: "mono", text: (m.record || {}).artifact_sha256 || "—" })]]) : null);
    });
    show(el("h1", { text: "Audit at " + time(a.at) }),
      el("p", { class: "muted", id: "audit-as-of", text: "The registry as of event #" + a.seq + ", recorded at or before " + time(a.at) +
        ". Nothing recorded later is shown. This link reproduces the view." }),
      form, models,
      el("h2", { text: "Gate policy in force" }),
      a.policy ? kv([["set by", a.policy.actor + " at " + time(a.policy.at) + " (event #" + a.policy.seq + ")"],
                     ["why", a.policy.reason], ["sha256", el("span", { class: "mono", text: a.policy.sha256 })],
                     ["text", el("pre", { class: "json", text: a.policy.text })]])
               : el("p", { text: "None recorded: the built-in defaults." }));
  }

  async function diff(seq) {
    const p = params();
    const from = p.get("from"), to = p.get("to");
    const form = el("form", { class: "inline", id: "diff-form" },
      el("label", { for: "from", text: "From (UTC):" }), instantInput("from", from),
      el("label", { for: "to", text: "to:" }), instantInput("to", to || "now"),
      el("button", { type: "submit", text: "Compare" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      location.hash = "#/diff?from=" + encodeURIComponent(form.elements.from.value.trim()) +
        "&to=" + encodeURIComponent(form.elements.to.value.trim());
    });
    if (!from) { show(el("h1", { text: "Diff between two instants" }), form); return; }
    const d = await api("/api/v1/diff?from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to || "now"));
    if (seq !== renderSeq) return;
    show(el("h1", { text: "From " + time(d.from) + " to " + time(d.to) }), form,
      el("table", { id: "diff" }, el("thead", {}, el("tr", {}, ["Model", "Production at start", "Production at end"].map((h) => el("th", { text: h })))),
        el("tbody", {}, Object.entries(d.production).map(([t, v]) => el("tr", { class: v.from !== v.to ? "lagging" : null },
          el("td", {}, modelLink(t)), el("td", { text: v.from || "—" }), el("td", { text: v.to || "—" }))))),
      el("h2", { text: "Events in between" }),
      el("ul", {}, d.events.map((e) => el("li", { text: time(e.recorded_at) + " " + eventText(e) }))));
  }

  async function integrity(seq) {
    const i = await api("/api/v1/integrity");
    if (seq !== renderSeq) return;
    const v = i.verify;
    const c = i.checkpoint;
    show(el("h1", { text: "Integrity" }),
      el("h2", { text: "Head of the log" }),
      kv([["event", "#" + i.head.seq + " at " + time(i.head.at)],
          ["chain hash", el("span", { class: "mono", id: "head-hash", text: i.head.hash })]]),
      el("h2", { text: "Last verification by the server" }),
      v ? kv([["result", el("span", { class: v.ok ? "ok" : "bad", id: "verify-result", text: v.ok ? "OK" : "FAILED" })],
              ["checked", v.events + " events, " + time(v.started_at) + " to " + time(v.finished_at)],
              ["problem", v.problem || "—"],
              ["Merkle root", el("span", { class: "mono", text: v.tree_root || "—" })],
              ["projections", v.projection_ok ? "match the log" : "differ from the log"]])
        : el("p", { class: "muted", text: "Not verified yet (serve --verify-every)." }),
      el("h2", { text: "Latest signed checkpoint" }),
      c ? [kv([["origin", c.origin], ["tree size", String(c.tree_size)], ["root hash", el("span", { class: "mono", text: c.root_hash })],
               ["time", time(c.time)]]), el("pre", { class: "json", text: c.checkpoint })]
        : el("p", { class: "muted", text: "This server signs no checkpoints (serve --checkpoint-key, docs/proofs.md)." }));
  }

  // ---------------------------------------------------------------- router
  let started = false;   // the head is known and follow() runs
  async function route() {
    if (!token()) { askToken(""); return; }
    if (!started) { await start(); return; }
    signout.hidden = false;
    const seq = ++renderSeq;
    const path = location.hash.replace(/^#/, "").split("?")[0] || "/";
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active",
      a.getAttribute("href") === "#/" + (parts[0] === "model" ? "" : (parts[0] || ""))));
    try {
      if (parts.length === 0) await overview(seq);
      else if (parts[0] === "model" && parts.length === 2) await model(seq, parts[1]);
      else if (parts[0] === "model" && parts.length === 3) await version(seq, parts[1], parts[2]);
      else if (parts[0] === "audit") await audit(seq);
      else if (parts[0] === "diff") await diff(seq);
      else if (parts[0] === "integrity") await integrity(seq);
      else show(el("p", { class: "error", text: "No such page: " + path }));
      if (seq === renderSeq) main.setAttribute("data-rendered-head", String(head));
    } catch (e) {
      if (seq === renderSeq) failed(e);
    }
  }

  // ---------------------------------------------------------------- live
  let following = false;
  async function follow() {
    if (following) return;
    following = true;
    for (;;) {
      if (!token()) { following = false; return; }
      try {
        const ans = await api("/api/v1/events?wait=25&limit=1000&after=" + head);
        live.className = "live on";
        const evs = ans.events || [];
        if (evs.length) {
          head = evs[evs.length - 1].seq;
          lastEvent = evs[evs.length - 1];
          live.textContent = "live · last event #" + head + " " + time(lastEvent.recorded_at);
          document.body.setAttribute("data-head", String(head));
          // Drawn again from the new state, unless the user is typing in a
          // form (the next event or a submit draws it).
          const typing = document.activeElement && document.activeElement.tagName === "INPUT";
          if (!typing) await route();
        } else {
          live.textContent = "live · event #" + head;
        }
      } catch (e) {
        live.className = "live off";
        live.textContent = "disconnected, retrying";
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) { following = false; failed(e); return; }
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  async function start() {
    if (!token()) { askToken(""); return; }
    started = true;
    try {
      const h = await api("/api/v1/events?limit=1&after=0");
      head = h.head_seq || 0;
      document.body.setAttribute("data-head", String(head));
      live.className = "live on";
      live.textContent = "live · event #" + head;
    } catch (e) { started = false; failed(e); return; }
    await route();
    follow();
  }

  window.addEventListener("hashchange", route);
  start();
})();
