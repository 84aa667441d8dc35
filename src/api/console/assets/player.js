// jitgate console: an asciicast v2 player that renders a terminal into a <pre> as text.
// It understands what shells print most: CR, LF (which also returns the carriage), backspace, tab, cursor moves and positions,
// erase in line and in display (clear screen); colours and other escapes are dropped.
// The screen is shown with textContent only.
"use strict";

const Player = (() => {
  const MAX_LINES = 5000;

  // A terminal screen: lines of characters and a cursor.
  class Screen {
    constructor(width, height) {
      this.width = Math.max(20, Math.min(width || 80, 500));
      this.height = Math.max(5, Math.min(height || 24, 200));
      this.reset();
    }
    reset() {
      this.lines = [[]];
      this.row = 0;
      this.col = 0;
      this.pending = ""; // an escape sequence split across events
    }
    top() { return Math.max(0, this.lines.length - this.height); }
    line() {
      while (this.lines.length <= this.row) this.lines.push([]);
      return this.lines[this.row];
    }
    newline() {
      this.row += 1;
      this.line();
      if (this.lines.length > MAX_LINES) {
        const drop = this.lines.length - MAX_LINES;
        this.lines.splice(0, drop);
        this.row -= drop;
      }
    }
    put(ch) {
      if (this.col >= this.width) { this.newline(); this.col = 0; }
      const l = this.line();
      while (l.length < this.col) l.push(" ");
      l[this.col] = ch;
      this.col += 1;
    }
    csi(params, final) {
      const n = params.split(";").map((p) => parseInt(p, 10));
      const a = Number.isFinite(n[0]) ? n[0] : 0;
      const one = a || 1;
      switch (final) {
        case "A": this.row = Math.max(this.top(), this.row - one); break;
        case "B": this.row += one; this.line(); break;
        case "C": this.col = Math.min(this.width - 1, this.col + one); break;
        case "D": this.col = Math.max(0, this.col - one); break;
        case "G": this.col = Math.max(0, one - 1); break;
        case "H": case "f": {
          this.row = this.top() + Math.max(0, one - 1);
          this.col = Math.max(0, (Number.isFinite(n[1]) && n[1] ? n[1] : 1) - 1);
          this.line();
          break;
        }
        case "J":
          if (a === 2 || a === 3) { this.reset(); }
          else if (a === 0) { this.line().length = Math.min(this.line().length, this.col); this.lines.length = this.row + 1; }
          break;
        case "K": {
          const l = this.line();
          if (a === 0) l.length = Math.min(l.length, this.col);
          else if (a === 1) for (let i = 0; i < Math.min(this.col + 1, l.length); i++) l[i] = " ";
          else l.length = 0;
          break;
        }
        default: break; // colours (m) and modes (h, l) are dropped
      }
    }
    write(data) {
      const s = this.pending + data;
      this.pending = "";
      let i = 0;
      while (i < s.length) {
        const ch = s[i];
        if (ch === "\x1b") {
          const rest = s.slice(i);
          let m;
          if ((m = /^\x1b\[([0-9;?]*)([@-~])/.exec(rest))) { this.csi(m[1].replace("?", ""), m[2]); i += m[0].length; continue; }
          if ((m = /^\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/.exec(rest))) { i += m[0].length; continue; }
          // A sequence cut by the end of this event: finish it with the next one.
          if (/^\x1b(?:\[[0-9;?]*)?$/.test(rest) || (/^\x1b\][^\x07]*$/.test(rest) && rest.length < 4096)) { this.pending = rest; break; }
          i += Math.min(2, rest.length); // ESC and one character: charset selection and the like
          continue;
        }
        if (ch === "\r") this.col = 0;
        // A line feed also returns the carriage: exec channels have no terminal to add the
        // CR, and a staircase of output helps nobody.
        else if (ch === "\n") { this.newline(); this.col = 0; }
        else if (ch === "\b") this.col = Math.max(0, this.col - 1);
        else if (ch === "\t") this.col = Math.min(this.width - 1, (Math.floor(this.col / 8) + 1) * 8);
        else if (ch >= " " && ch !== "\x7f") this.put(ch);
        i += 1;
      }
    }
    text() { return this.lines.map((l) => l.join("").replace(/\s+$/, "")).join("\n"); }
  }

  // Parses asciicast v2 text: header and output events [t, data].
  function parse(text) {
    const lines = String(text).split("\n").filter((l) => l.trim());
    let header = {};
    try { header = JSON.parse(lines[0] || "{}"); } catch (_) { header = {}; }
    const events = [];
    for (const l of lines.slice(1)) {
      try {
        const e = JSON.parse(l);
        if (Array.isArray(e) && e[1] === "o" && typeof e[2] === "string") events.push([Number(e[0]) || 0, e[2]]);
      } catch (_) { /* a torn line is skipped */ }
    }
    return { header, events };
  }

  // A player bound to a container: controls and a <pre> screen.
  function create(castText, { el }) {
    const { header, events } = parse(castText);
    const screen = new Screen(header.width, header.height);
    const pre = el("pre", { class: "terminal", role: "log", "aria-label": "terminal playback", tabindex: "0" });
    const status = el("span", { class: "player-status", "aria-live": "polite" });
    const playButton = el("button", { type: "button", "data-player": "play", text: "Play" });
    const restartButton = el("button", { type: "button", "data-player": "restart", text: "Restart" });
    const endButton = el("button", { type: "button", "data-player": "end", text: "Jump to end" });
    const speed = el("select", { name: "speed", "aria-label": "playback speed" },
      ...[0.5, 1, 2, 4, 8].map((s) => el("option", { value: String(s), selected: s === 1, text: s + "×" })));
    const total = events.length ? events[events.length - 1][0] : 0;
    let next = 0, clock = 0, timer = null, lastTick = 0;

    function show() {
      pre.textContent = screen.text();
      pre.scrollTop = pre.scrollHeight;
      status.textContent = (timer ? "playing" : next >= events.length ? "finished" : "paused") +
        " · " + clock.toFixed(1) + "s of " + total.toFixed(1) + "s";
      playButton.textContent = timer ? "Pause" : "Play";
    }
    function step() {
      const now = performance.now();
      // Idle gaps longer than 2 s are shortened, as asciinema players do.
      clock += Math.min(2, (now - lastTick) / 1000) * Number(speed.value);
      lastTick = now;
      if (next < events.length && events[next][0] - clock > 2) clock = events[next][0] - 2;
      while (next < events.length && events[next][0] <= clock) screen.write(events[next++][1]);
      if (next >= events.length) { clock = total; pause(); }
      show();
    }
    function play() {
      if (next >= events.length) restart();
      if (timer) return;
      lastTick = performance.now();
      timer = setInterval(step, 50);
      show();
    }
    function pause() {
      if (timer) clearInterval(timer);
      timer = null;
      show();
    }
    function restart() {
      pause();
      screen.reset();
      next = 0;
      clock = 0;
      show();
    }
    function toEnd() {
      pause();
      while (next < events.length) screen.write(events[next++][1]);
      clock = total;
      show();
    }
    playButton.addEventListener("click", () => (timer ? pause() : play()));
    restartButton.addEventListener("click", restart);
    endButton.addEventListener("click", toEnd);
    const node = el("div", { class: "player" },
      el("div", { class: "player-controls" }, playButton, restartButton, endButton,
        el("label", {}, "Speed ", speed), status),
      pre);
    show();
    return { node, play, pause, stop: pause };
  }

  return { create, Screen, parse };
})();
