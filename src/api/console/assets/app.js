// jitgate console: sign-in, pending requests over the API's event stream, history and grants,
// sessions with their timelines and terminal playback. A client of the /v1 API like the CLI:
// the server decides what this user sees and may do; the page only shows it.
"use strict";

(() => {
  const { el, code, duration, parseDuration, time } = Render;
  const $ = (id) => document.getElementById(id);
  const state = { user: null, csrf: null, auditor: false, stream: null, pending: new Map(), details: new Map(), players: [] };
  const now = () => Date.now() / 1000;

  // One call to the API with the console cookie; POST and DELETE carry the CSRF token.
  async function api(method, path, body, { raw = false } = {}) {
    const headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = state.csrf || "";
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let data = text;
    if (!raw || !resp.ok) { try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; } }
    if (resp.status === 401 && state.user && path !== "/console/session") signedOut("Your session has ended: sign in again.");
    if (!resp.ok) {
      const e = new Error((data && data.error) || resp.statusText || "request failed");
      e.status = resp.status;
      throw e;
    }
    return data;
  }

  function notice(text, kind) {
    const n = $("notice");
    n.textContent = text || "";
    n.dataset.kind = kind || "info";
  }

  // --- signing in and out ------------------------------------------------------------------
  function signedIn(session) {
    state.user = session.user;
    state.csrf = session.csrf;
    state.auditor = !!session.auditor;
    $("whoami").textContent = "Signed in as " + session.user + (session.auditor ? " (auditor)" : "");
    for (const id of ["whoami", "nav", "sign-out"]) $(id).hidden = false;
    $("sign-in").hidden = true;
    notice("");
    startStream();
    route();
  }

  function signedOut(message) {
    if (state.stream) state.stream.close();
    Object.assign(state, { user: null, csrf: null, auditor: false, stream: null });
    state.pending.clear();
    state.details.clear();
    stopPlayers();
    for (const id of ["pending-list", "history-list", "grant-list", "session-rows", "session-timeline", "session-facts", "session-recordings"]) $(id).replaceChildren();
    for (const id of ["whoami", "nav", "sign-out"]) $(id).hidden = true;
    $("session-filter").reset();
    for (const v of document.querySelectorAll("[data-view]")) { v.hidden = true; delete v.dataset.loaded; }
    $("sign-in").hidden = false;
    notice(message || "", message ? "error" : "info");
    $("token").focus();
  }

  $("sign-in-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("token");
    try {
      const session = await api("POST", "/console/session", { token: input.value.trim() });
      input.value = "";
      signedIn(session);
      $("main").focus();
    } catch (e) {
      notice("Sign-in failed: " + e.message, "error");
    }
  });

  $("sign-out").addEventListener("click", async () => {
    try { await api("DELETE", "/console/session"); } catch (_) { /* signed out anyway */ }
    // The next person to sign in here starts from the pending list, not from this one's page.
    history.replaceState(null, "", location.pathname);
    signedOut("Signed out.");
  });

  // --- navigation ----------------------------------------------------------------------------
  function stopPlayers() {
    for (const p of state.players) p.stop();
    state.players = [];
  }

  function route() {
    if (!state.user) return;
    stopPlayers();
    const hash = location.hash.replace(/^#/, "") || "pending";
    const [view, arg] = hash.split("/", 2);
    const name = ["pending", "history", "sessions", "session"].includes(view) ? view : "pending";
    for (const v of document.querySelectorAll("[data-view]")) v.hidden = v.dataset.view !== name;
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === name || (name === "session" && a.dataset.nav === "sessions")) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    if (name === "pending") loadPending();
    if (name === "history") loadHistory();
    if (name === "sessions") loadSessions();
    if (name === "session" && arg) loadSession(decodeURIComponent(arg));
  }
  window.addEventListener("hashchange", route);

  // --- requests --------------------------------------------------------------------------------
  function fact(dl, label, value) {
    if (value === undefined || value === null || value === "") return;
    dl.append(el("dt", { text: label }), el("dd", {}, value instanceof Node ? value : Render.escaped(String(value))));
  }

  function impactText(impact) {
    if (!impact) return "";
    if (impact.estimated_rows !== undefined) {
      const n = Math.round(impact.estimated_rows);
      return "about " + n + (n === 1 ? " row" : " rows") + " (planner estimate)";
    }
    if (impact.error) return "no estimate: " + impact.error;
    return "no estimate";
  }

  function requestCard(r) {
    const card = el("article", { class: "card", "data-request-id": r.id, "data-state": r.state, "aria-label": "request " + r.id });
    card.append(el("header", { class: "card-head" },
      el("h3", { text: r.class + " on " + r.target }),
      el("span", { class: "state state-" + r.state, text: r.state.toUpperCase() })));
    card.append(code(r.statement, r.protocol));
    const dl = el("dl", { class: "facts" });
    fact(dl, "Class", r.class);
    fact(dl, "Tables", (r.tables || []).join(", ") || "none");
    if (r.protocol !== "ssh") fact(dl, "Impact", el("span", { "data-field": "impact", text: impactText(r.impact) }));
    fact(dl, "User", r.user);
    fact(dl, "From", r.source);
    fact(dl, "Application", el("span", { "data-field": "application", text: "…" }));
    fact(dl, "Target", r.target + " (" + r.protocol + ")");
    fact(dl, "Rule", r.rule);
    fact(dl, "Requested", el("span", { "data-since": r.created_at, text: time(r.created_at) }));
    if (r.state === "pending") fact(dl, "Time left", el("span", { "data-expires": r.expires_at, text: "" }));
    const approvals = r.approvals || [];
    fact(dl, "Approvals", approvals.length + " of " + r.approvals_required +
      (approvals.length ? " (" + approvals.map((a) => a.by).join(", ") + ")" : ""));
    fact(dl, "Decided by", r.decided_by);
    fact(dl, "Reason", r.reason);
    fact(dl, "Grant", r.grant);
    card.append(dl);
    card.append(el("p", {}, el("a", { href: "#session/" + encodeURIComponent(r.session), text: "Session " + r.session })));
    if (r.state === "pending" && r.can_decide) card.append(decisionForm(r));
    else if (r.state === "pending") card.append(el("p", { class: "hint", text: r.user === state.user ? "Your request: waiting for an approver." : "You may not decide this request." }));
    if (state.details.has(r.id)) showDetail(card, state.details.get(r.id));
    else loadDetail(r.id);
    tick(card);
    return card;
  }

  // The application comes with the request's detail only (from the session's record, which
  // the audit trail may write a moment later), and a Postgres write's impact estimate is
  // added a moment after the request is made: fetch the detail, and again (a few times, a
  // second apart) while either is missing.
  async function loadDetail(id, attempt = 0) {
    state.details.set(id, state.details.get(id) || null);
    let detail = null;
    try { detail = await api("GET", "/v1/requests/" + encodeURIComponent(id)); } catch (_) { return; }
    state.details.set(id, detail);
    for (const c of document.querySelectorAll('[data-request-id="' + CSS.escape(id) + '"]')) showDetail(c, detail);
    const estimated = detail.impact && (detail.impact.estimated_rows !== undefined || detail.impact.error);
    const incomplete = !detail.application || (detail.protocol !== "ssh" && !estimated);
    if (detail.state === "pending" && incomplete && attempt < 5) {
      setTimeout(() => loadDetail(id, attempt + 1), 1000);
    }
  }

  function showDetail(card, detail) {
    if (!detail) return;
    const app = card.querySelector("[data-field=application]");
    if (app) app.textContent = detail.application || "not known";
    const impact = card.querySelector("[data-field=impact]");
    const estimated = detail.impact && (detail.impact.estimated_rows !== undefined || detail.impact.error);
    if (impact && estimated) impact.textContent = impactText(detail.impact);
  }

  function decisionForm(r) {
    const max = r.max_grant_secs;
    const status = el("p", { class: "card-status", role: "status", "aria-live": "polite" });
    const reason = el("input", { name: "reason", type: "text", autocomplete: "off", id: "reason-" + r.id });
    const grant = el("input", { name: "grant", type: "text", autocomplete: "off", id: "grant-" + r.id, placeholder: "empty: once; e.g. 10m", inputmode: "text" });
    const scope = el("select", { name: "scope", id: "scope-" + r.id },
      el("option", { value: "shape", text: "same shape (other values)" }),
      el("option", { value: "tables", text: "same class on these tables" }),
      el("option", { value: "exact", text: "this exact text" }));
    const approve = el("button", { type: "button", "data-action": "approve", class: "approve", text: "Approve" });
    const deny = el("button", { type: "button", "data-action": "deny", class: "deny", text: "Deny" });
    const form = el("form", { class: "decide", "aria-label": "decide request " + r.id },
      el("label", { for: reason.id, text: "Reason (required to deny)" }), reason,
      el("label", { for: grant.id, text: "Grant for" + (max ? " (at most " + duration(max) + ")" : "") }), grant,
      el("label", { for: scope.id, text: "Grant covers" }), scope,
      el("div", { class: "buttons" }, approve, deny), status);
    form.addEventListener("submit", (ev) => ev.preventDefault());
    async function send(verdict) {
      const body = { reason: reason.value.trim() };
      if (verdict === "approve") {
        const secs = parseDuration(grant.value);
        if (Number.isNaN(secs)) { status.textContent = "Cannot read the grant: write e.g. 10m, 1h or 90s (empty: once)."; return; }
        if (secs !== null && max && secs > max) { status.textContent = "The rule allows grants of at most " + duration(max) + "."; return; }
        if (secs !== null) { body.grant_secs = secs; body.scope = scope.value; }
      } else if (!body.reason) {
        status.textContent = "A denial needs a reason.";
        reason.focus();
        return;
      }
      approve.disabled = deny.disabled = true;
      status.textContent = verdict === "approve" ? "Approving…" : "Denying…";
      try {
        const after = await api("POST", "/v1/requests/" + encodeURIComponent(r.id) + "/" + verdict, body);
        status.textContent = verdict === "approve" ? "Approved (" + after.state + ")." : "Denied.";
        notice((verdict === "approve" ? "Approved " : "Denied ") + r.id + ".");
      } catch (e) {
        status.textContent = "Failed: " + e.message;
        approve.disabled = deny.disabled = false;
      }
    }
    approve.addEventListener("click", () => send("approve"));
    deny.addEventListener("click", () => send("deny"));
    return form;
  }

  function renderPending() {
    const list = $("pending-list");
    const sorted = [...state.pending.values()].sort((a, b) => a.created_at - b.created_at);
    const keep = new Set(sorted.map((r) => r.id));
    for (const card of [...list.children]) if (!keep.has(card.dataset.requestId)) card.remove();
    for (const r of sorted) {
      const old = list.querySelector('[data-request-id="' + CSS.escape(r.id) + '"]');
      if (old && old.dataset.version === r.version) continue;
      // Keep what the approver was typing when the card is redrawn.
      const typed = old ? [...old.querySelectorAll("input, select")].map((i) => [i.name, i.value]) : [];
      const card = requestCard(r);
      card.dataset.version = r.version;
      for (const [name, value] of typed) { const i = card.querySelector('[name="' + name + '"]'); if (i) i.value = value; }
      if (old) old.replaceWith(card); else list.append(card);
    }
    $("pending-count").textContent = "(" + sorted.length + ")";
    $("pending-empty").hidden = sorted.length > 0;
  }

  function version(r) {
    return [r.state, (r.approvals || []).length, r.can_decide].join(":");
  }

  function upsert(r) {
    r.version = version(r);
    if (r.state === "pending") state.pending.set(r.id, r);
    else state.pending.delete(r.id);
    renderPending();
    if (!$("view-history").hidden) loadHistory();
  }

  async function loadPending() {
    try {
      const list = await api("GET", "/v1/requests?state=pending");
      state.pending.clear();
      for (const r of list) { r.version = version(r); state.pending.set(r.id, r); }
      renderPending();
      $("view-pending").dataset.loaded = "1";
    } catch (e) {
      notice("Cannot load pending requests: " + e.message, "error");
    }
  }

  function startStream() {
    if (state.stream) state.stream.close();
    const es = new EventSource("/v1/requests/stream");
    let opened = false;
    es.addEventListener("open", () => {
      $("stream-state").textContent = "Live: new requests appear here without reloading.";
      if (opened) loadPending(); // reconnected: catch up on what was missed
      opened = true;
    });
    es.addEventListener("request", (ev) => {
      try { upsert(JSON.parse(ev.data)); } catch (_) { /* not JSON: ignore */ }
    });
    es.addEventListener("lagged", () => loadPending());
    es.addEventListener("error", async () => {
      $("stream-state").textContent = "Connection lost: reconnecting…";
      if (es.readyState === EventSource.CLOSED) {
        try { await api("GET", "/console/session"); setTimeout(startStream, 2000); } catch (_) { signedOut("Your session has ended: sign in again."); }
      }
    });
    state.stream = es;
  }

  // --- history and grants ---------------------------------------------------------------------
  function grantCard(g) {
    const card = el("article", { class: "card", "data-grant-id": g.id, "aria-label": "grant " + g.id });
    card.append(el("header", { class: "card-head" }, el("h3", { text: "Grant: " + g.class + " on " + g.target }), el("span", { class: "state", text: "LIVE" })));
    card.append(code(g.statement, (g.tables || []).length ? "postgres" : "ssh"));
    const dl = el("dl", { class: "facts" });
    fact(dl, "User", g.user);
    fact(dl, "Covers", g.scope + (g.tables && g.tables.length ? " on " + g.tables.join(", ") : ""));
    fact(dl, "Approved by", g.approved_by);
    fact(dl, "Time left", el("span", { "data-expires": g.expires_at }));
    card.append(dl);
    const status = el("p", { class: "card-status", role: "status" });
    if (g.can_revoke) {
      card.append(el("div", { class: "buttons" }, el("button", {
        type: "button", "data-action": "revoke", class: "deny", text: "Revoke",
        onclick: async (ev) => {
          ev.target.disabled = true;
          try { await api("DELETE", "/v1/grants/" + encodeURIComponent(g.id)); notice("Revoked grant " + g.id + "."); loadHistory(); } catch (e) { status.textContent = "Failed: " + e.message; ev.target.disabled = false; }
        },
      })));
    }
    card.append(status);
    tick(card);
    return card;
  }

  async function loadHistory() {
    try {
      const [requests, grants] = await Promise.all([api("GET", "/v1/requests"), api("GET", "/v1/grants")]);
      const decided = requests.filter((r) => r.state !== "pending").reverse().slice(0, 50);
      $("history-list").replaceChildren(...decided.map(requestCard));
      $("history-empty").hidden = decided.length > 0;
      $("grant-list").replaceChildren(...grants.map(grantCard));
      $("grants-empty").hidden = grants.length > 0;
    } catch (e) {
      notice("Cannot load history: " + e.message, "error");
    }
  }

  // --- sessions --------------------------------------------------------------------------------
  $("session-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadSessions(); });

  async function loadSessions() {
    const f = new FormData($("session-filter"));
    const q = new URLSearchParams();
    for (const k of ["user", "target", "since"]) if (String(f.get(k) || "").trim()) q.set(k, String(f.get(k)).trim());
    try {
      const list = (await api("GET", "/v1/sessions?" + q.toString())).reverse();
      $("session-rows").replaceChildren(...list.map((s) => el("tr", { "data-session-id": s.id },
        el("td", { text: time(s.started_at) }), el("td", {}, Render.escaped(s.user)), el("td", {}, Render.escaped(s.target)),
        el("td", { text: s.protocol }), el("td", {}, Render.escaped(s.client + (s.application ? " · " + s.application : ""))),
        el("td", { text: s.ended_at ? "ended" : "open" }),
        el("td", {}, el("a", { href: "#session/" + encodeURIComponent(s.id), text: "Open", "aria-label": "open session " + s.id })))));
      $("sessions-empty").hidden = list.length > 0;
      $("view-sessions").dataset.loaded = "1";
    } catch (e) {
      notice("Cannot load sessions: " + e.message, "error");
    }
  }

  const HIDDEN_FIELDS = new Set(["seq", "at", "session", "kind", "hash", "text", "command", "statement", "data"]);

  function timelineItem(ev, protocol) {
    const li = el("li", { class: "event event-" + ev.kind, "data-kind": ev.kind });
    li.append(el("div", { class: "event-head" }, el("time", { text: time(ev.at) }), " ", el("strong", { text: ev.kind.replace(/_/g, " ") })));
    const text = ev.text ?? ev.command ?? ev.statement;
    if (typeof text === "string") li.append(code(text, ev.command !== undefined ? "ssh" : protocol));
    const dl = el("dl", { class: "facts" });
    for (const [k, v] of Object.entries(ev)) {
      if (HIDDEN_FIELDS.has(k) || v === null || v === undefined) continue;
      if (k === "request" && typeof v === "string") { fact(dl, k, el("span", { text: v })); continue; }
      fact(dl, k.replace(/_/g, " "), typeof v === "object" ? JSON.stringify(v) : String(v));
    }
    if (dl.children.length) li.append(dl);
    return li;
  }

  async function loadSession(id) {
    const path = "/v1/sessions/" + encodeURIComponent(id);
    $("session-title").textContent = "Session " + id;
    $("session-facts").replaceChildren();
    $("session-recordings").replaceChildren();
    $("session-timeline").replaceChildren();
    try {
      const s = await api("GET", path);
      const dl = $("session-facts");
      fact(dl, "User", s.user);
      fact(dl, "Target", s.target + " (" + s.protocol + ")");
      fact(dl, "From", s.client);
      fact(dl, "Application", s.application);
      fact(dl, "Started", time(s.started_at));
      fact(dl, "Ended", s.ended_at ? time(s.ended_at) + (s.end_reason ? " (" + s.end_reason + ")" : "") : "still open");
      const events = await api("GET", path + "/events");
      $("session-timeline").replaceChildren(...events.filter((e) => e.kind !== "recording").map((e) => timelineItem(e, s.protocol)));
      if (s.protocol === "ssh") await loadRecordings(path);
    } catch (e) {
      notice("Cannot load session " + id + ": " + e.message, "error");
    }
  }

  async function loadRecordings(path) {
    const box = $("session-recordings");
    let channels = [];
    try { channels = await api("GET", path + "/recordings"); } catch (_) { box.append(el("p", { class: "hint", text: "No terminal recording." })); return; }
    for (const c of channels.slice(0, 8)) {
      const cast = await api("GET", path + "/recording?channel=" + c.channel, undefined, { raw: true });
      const section = el("section", { class: "recording", "data-channel": c.channel },
        el("h3", {}, "Channel " + c.channel + ": ", Render.escaped(c.command || "")));
      const player = Player.create(cast, { el });
      state.players.push(player);
      section.append(player.node);
      box.append(section);
    }
  }

  // --- time left and age, every second ------------------------------------------------------------
  function tick(root) {
    const t = now();
    for (const s of (root || document).querySelectorAll("[data-expires]")) {
      const left = Number(s.dataset.expires) - t;
      s.textContent = left > 0 ? duration(left) + " left" : "expired";
    }
    for (const s of (root || document).querySelectorAll("[data-since]")) {
      s.textContent = time(Number(s.dataset.since)) + " (" + duration(t - Number(s.dataset.since)) + " ago)";
    }
  }
  setInterval(() => tick(), 1000);

  // --- start ----------------------------------------------------------------------------------
  (async () => {
    try {
      const session = await api("GET", "/console/session");
      if (session && session.csrf) return signedIn(session);
    } catch (_) { /* not signed in */ }
    signedOut();
  })();
})();
