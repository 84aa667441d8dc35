// jitgate console: DOM helpers, visible escaping of control characters, and a tiny SQL and
// shell highlighter. Everything user-supplied goes into the page through text nodes
// (textContent), never parsed as HTML.
"use strict";

const Render = (() => {
  // Builds an element: el("span", {class: "x", "data-id": "1"}, child, "text", ...).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "onclick") node.addEventListener("click", v);
      else if (k === "onsubmit") node.addEventListener("submit", v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // Characters shown as a visible escape rather than as themselves: C0 and C1 controls other
  // than newline and tab, DEL, and the bidirectional overrides that can make text read
  // differently from what runs.
  const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

  function escapeName(ch) {
    const code = ch.codePointAt(0);
    // Written out rather than as a symbol such as U+241B, which many fonts lack.
    if (code < 0x100) return "\\x" + code.toString(16).padStart(2, "0");
    return "\\u" + code.toString(16).padStart(4, "0");
  }

  // Text as nodes: plain runs as text, hidden characters as marked spans.
  function escaped(text, cls) {
    const frag = document.createDocumentFragment();
    let last = 0;
    text = String(text);
    for (const m of text.matchAll(HIDDEN)) {
      if (m.index > last) frag.append(cls ? el("span", { class: cls, text: text.slice(last, m.index) }) : document.createTextNode(text.slice(last, m.index)));
      const code = m[0].codePointAt(0).toString(16).padStart(4, "0");
      frag.append(el("span", { class: "ctl", title: "control character U+" + code.toUpperCase(), text: escapeName(m[0]) }));
      last = m.index + m[0].length;
    }
    if (last < text.length) frag.append(cls ? el("span", { class: cls, text: text.slice(last) }) : document.createTextNode(text.slice(last)));
    return frag;
  }

  const SQL_KEYWORDS = new Set(("select from where insert into values update set delete returning " +
    "create alter drop table index view schema function procedure trigger sequence type extension " +
    "grant revoke to on with as and or not null is in exists between like ilike join left right " +
    "inner outer full cross using group by order having limit offset union all distinct case when " +
    "then else end begin commit rollback savepoint release truncate copy do language returns " +
    "primary key references default cascade restrict if replace security definer call execute " +
    "prepare deallocate analyze explain vacuum lock share exclusive mode for nowait skip locked " +
    "true false asc desc only role user owner rename column add constraint check unique").split(" "));
  const SHELL_KEYWORDS = new Set(("if then else elif fi for while until do done case esac in " +
    "function select time sudo exec eval export unset source").split(" "));

  // One token: [class, text]. Classes: kw, str, num, com, var, op, id.
  function tokenizeSql(s) {
    const out = [];
    let i = 0;
    while (i < s.length) {
      const rest = s.slice(i);
      let m;
      if ((m = /^--[^\n]*/.exec(rest))) out.push(["com", m[0]]);
      else if (rest.startsWith("/*")) {
        const end = s.indexOf("*/", i + 2);
        m = [end < 0 ? rest : s.slice(i, end + 2)];
        out.push(["com", m[0]]);
      } else if ((m = /^[eE]?'(?:[^']|'')*'?/.exec(rest))) out.push(["str", m[0]]);
      else if ((m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest))) {
        const end = s.indexOf(m[0], i + m[0].length);
        out.push(["str", end < 0 ? rest : s.slice(i, end + m[0].length)]);
        m = [out[out.length - 1][1]];
      } else if ((m = /^"(?:[^"]|"")*"?/.exec(rest))) out.push(["id", m[0]]);
      else if ((m = /^\$\d+/.exec(rest))) out.push(["var", m[0]]);
      else if ((m = /^\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(rest))) out.push(["num", m[0]]);
      else if ((m = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(rest))) out.push([SQL_KEYWORDS.has(m[0].toLowerCase()) ? "kw" : "", m[0]]);
      else if ((m = /^\s+/.exec(rest))) out.push(["", m[0]]);
      else { m = [rest[0]]; out.push(["op", m[0]]); }
      i += m[0].length;
    }
    return out;
  }

  function tokenizeShell(s) {
    const out = [];
    let i = 0;
    let wordStart = true;
    while (i < s.length) {
      const rest = s.slice(i);
      let m;
      if (wordStart && (m = /^#[^\n]*/.exec(rest))) out.push(["com", m[0]]);
      else if ((m = /^'[^']*'?/.exec(rest))) out.push(["str", m[0]]);
      else if ((m = /^"(?:[^"\\]|\\.)*"?/s.exec(rest))) out.push(["str", m[0]]);
      else if ((m = /^\$(?:\{[^}]*\}?|\(\(?|[A-Za-z_][A-Za-z0-9_]*|[0-9@#?$!*-])/.exec(rest))) out.push(["var", m[0]]);
      else if ((m = /^\d+(?![A-Za-z_])/.exec(rest))) out.push(["num", m[0]]);
      else if ((m = /^[A-Za-z_][A-Za-z0-9_.\/-]*/.exec(rest))) out.push([wordStart && SHELL_KEYWORDS.has(m[0]) ? "kw" : "", m[0]]);
      else if ((m = /^\s+/.exec(rest))) out.push(["", m[0]]);
      else if ((m = /^(?:&&|\|\||;;|[|&;<>()])/.exec(rest))) out.push(["op", m[0]]);
      else { m = [rest[0]]; out.push(["", m[0]]); }
      const last = out[out.length - 1];
      wordStart = /^\s+$/.test(last[1]) || last[0] === "op";
      i += m[0].length;
    }
    return out;
  }

  // A statement or command as a highlighted, escaped <pre>.
  function code(text, protocol) {
    const tokens = protocol === "ssh" ? tokenizeShell(String(text)) : tokenizeSql(String(text));
    const pre = el("pre", { class: "code", "aria-label": protocol === "ssh" ? "command" : "statement" });
    for (const [cls, t] of tokens) pre.append(escaped(t, cls ? "tok-" + cls : ""));
    return pre;
  }

  // "1h 5m", "42s".
  function duration(secs) {
    secs = Math.max(0, Math.round(secs));
    const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    if (h) return h + "h" + (m ? " " + m + "m" : "");
    if (m) return m + "m" + (s ? " " + s + "s" : "");
    return s + "s";
  }

  // "10m", "1h30m", "90s", "2h" → seconds; a bare number is minutes; "" → null; else NaN.
  function parseDuration(text) {
    text = String(text || "").replace(/\s+/g, "").toLowerCase();
    if (!text) return null;
    if (/^\d+$/.test(text)) return Number(text) * 60;
    if (!/^(\d+[dhms])+$/.test(text)) return NaN;
    let total = 0;
    for (const m of text.matchAll(/(\d+)([dhms])/g)) total += Number(m[1]) * { d: 86400, h: 3600, m: 60, s: 1 }[m[2]];
    return total;
  }

  function time(unixSecs) {
    if (unixSecs === undefined || unixSecs === null) return "";
    return new Date(unixSecs * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  return { el, escaped, code, duration, parseDuration, time, tokenizeSql, tokenizeShell };
})();
