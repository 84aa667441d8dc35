#!/usr/bin/env python3
"""Approval latency through jitgate (used by bench/approvals.sh; Python standard library only).

Opens N sessions through jitgate in batches; each runs one allowed read of its row (so its
backend is not cold), then sends one held write `UPDATE t SET v = v + 1 WHERE id = <i>` and waits
for jitgate's NoticeResponse with the request id. Then, one request at a time, it approves over one persistent HTTP connection to the control
API and times three things from t0 = just before the POST is sent:

  http      the approve call itself: until the first byte of the POST's response is readable;
  upstream  until Postgres read the statement: pg_stat_activity.query_start of the session's
            backend (Postgres sets it, in µs, when it reads the Query message), against the wall
            clock taken beside t0 (same machine, same clock);
  client    until the session's CommandComplete `UPDATE 1` is readable: an upper bound of the
            above (approve round trip + wake-up + forward + execution + the result's way back).

Every session must end with `UPDATE 1`; anything else fails the run (exit 1). Optionally
(--allow-queries M) it first times M allowed reads through jitgate and M directly, alternating,
for the allow-path cost per statement.

    JG_PASSWORD=... API_TOKEN=... DIRECT_PASSWORD=... approvals_client.py \
        --port JG_PORT --api-port API_PORT --direct-port PG_PORT [--n 1000] [--batch 100]
"""
import argparse
import concurrent.futures
import http.client
import json
import math
import os
import re
import select
import socket
import struct
import sys
import time

from pgwire_client import Fail, Startup, error_text, fields_of, message, message_length

NOTICE_ID = re.compile(r"held for approval, request (\S+) \(rule")


class Session:
    """One Postgres v3 session over a blocking socket (start-up and SCRAM-SHA-256 from
    pgwire_client.py, shared with idle_client.py)."""

    def __init__(self, host, port, user, db, password, app="approvals-bench", timeout=120.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self._startup(user.encode(), db.encode(), password.encode(), app.encode())

    # --- framing -------------------------------------------------------------------------
    def send(self, data: bytes):
        self.sock.sendall(data)

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Fail("server closed the connection")
        self.buf += chunk

    def next_buffered(self):
        """A complete message already in the buffer, or None."""
        if len(self.buf) < 5:
            return None
        end = 5 + message_length(self.buf)
        if len(self.buf) < end:
            return None
        kind, body = bytes(self.buf[:1]), bytes(self.buf[5:end])
        del self.buf[:end]
        return kind, body

    def read_message(self):
        while True:
            m = self.next_buffered()
            if m is not None:
                return m
            self.fill()

    # --- startup and auth ----------------------------------------------------------------
    def _startup(self, user, db, password, app):
        startup = Startup(user, db, password, app)
        self.send(startup.first())
        while not startup.done:
            kind, body = self.read_message()
            reply = startup.feed(kind, body)
            if reply:
                self.send(reply)

    # --- queries -------------------------------------------------------------------------
    def query(self, sql: str):
        """Simple Query; returns (rows as lists of str|None, command tags). Raises on an error."""
        self.send(message(b"Q", sql.encode() + b"\0"))
        rows, tags, error = [], [], None
        while True:
            kind, body = self.read_message()
            if kind == b"D":
                (n,) = struct.unpack_from("!h", body, 0)
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack_from("!i", body, pos)
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif kind == b"C":
                tags.append(body.rstrip(b"\0").decode())
            elif kind == b"E":
                error = error_text(body)
            elif kind == b"Z":
                if error:
                    raise Fail(f"{sql!r}: {error}")
                return rows, tags

    def close(self):
        try:
            self.send(message(b"X", b""))
        except OSError:
            pass
        self.sock.close()


# --- statistics ----------------------------------------------------------------------------

def pct(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def summary(values_ms):
    v = sorted(values_ms)
    return {"count": len(v), "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
            "max": v[-1] if v else float("nan")}


def fmt_row(name, s):
    return (f"  {name:<48} {s['count']:>6} {s['p50']:>9.3f} {s['p90']:>9.3f} "
            f"{s['p99']:>9.3f} {s['max']:>9.3f}")


# --- the benchmark ---------------------------------------------------------------------------

def allow_path(a):
    """Alternate allowed single-row reads through jitgate and directly; per-query round trips."""
    jg = Session(a.host, a.port, a.user, a.db, a.password, app="approvals-bench-allow")
    direct = Session(a.host, a.direct_port, a.direct_user, a.direct_db, a.direct_password,
                     app="approvals-bench-allow")
    out = {"jitgate": [], "direct": []}
    try:
        for phase, count in (("warm-up", min(200, a.allow_queries)), ("measure", a.allow_queries)):
            for k in range(count):
                sql = f"SELECT v FROM t WHERE id = {k % a.rows + 1}"
                order = (("jitgate", jg), ("direct", direct)) if k % 2 == 0 else \
                    (("direct", direct), ("jitgate", jg))
                for name, s in order:
                    t0 = time.perf_counter()
                    rows, _ = s.query(sql)
                    dt = time.perf_counter() - t0
                    if len(rows) != 1:
                        raise Fail(f"allow path: {sql} through {name} gave {len(rows)} rows")
                    if phase == "measure":
                        out[name].append(dt * 1000.0)
    finally:
        jg.close()
        direct.close()
    return out


def open_sessions(a, ids):
    def one(i):
        return i, Session(a.host, a.port, a.user, a.db, a.password)
    sessions = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.connect_concurrency) as ex:
        for fut in concurrent.futures.as_completed([ex.submit(one, i) for i in ids]):
            i, s = fut.result()
            sessions[i] = s
    return sessions


def hold(s, i):
    """Send the write and read until jitgate's notice that it is held; return the request id."""
    s.send(message(b"Q", f"UPDATE t SET v = v + 1 WHERE id = {i}\0".encode()))
    while True:
        kind, body = s.read_message()
        if kind == b"N":
            m = NOTICE_ID.search(fields_of(body).get(b"M", ""))
            if m:
                return m.group(1)
            continue  # some other notice
        if kind == b"E":
            raise Fail(f"session {i}: error instead of a hold: {error_text(body)}")
        raise Fail(f"session {i}: {kind!r} before the hold notice (was the write not held?)")


class Api:
    def __init__(self, host, port, token, timeout):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connections = 0
        self._sock = None

    def _note_socket(self):
        if self.conn.sock is not self._sock:
            self._sock = self.conn.sock
            self.connections += 1
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, method, path, body=None):
        if self.conn.sock is None:
            self.conn.connect()
        self._note_socket()
        self.conn.request(method, path, body=body, headers=self.headers)
        self._note_socket()

    def response(self):
        r = self.conn.getresponse()
        data = r.read()
        if r.getheader("connection", "").lower() == "close":
            self.conn.close()
        return r.status, data

    def call(self, method, path, body=None):
        self.send(method, path, body)
        return self.response()


def approve_and_time(api, s, i, rid, timeout):
    """Approve one held request; return (wall0 µs, http ms, client ms)."""
    body = json.dumps({"reason": "approvals bench"}).encode()
    path = f"/v1/requests/{rid}/approve"
    wall0_us = time.time_ns() // 1000
    t0 = time.perf_counter()
    api.send("POST", path, body)
    t_http = t_cc = None
    status = data = None
    tag = None
    deadline = t0 + timeout
    while t_http is None or t_cc is None:
        want = []
        if t_http is None:
            want.append(api.conn.sock)
        if t_cc is None:
            want.append(s.sock)
        left = deadline - time.perf_counter()
        if left <= 0:
            raise Fail(f"session {i} (request {rid}): no {'HTTP response' if t_http is None else 'result'}"
                       f" {timeout:.0f} s after the approve")
        ready, _, _ = select.select(want, [], [], left)
        now = time.perf_counter()
        if t_http is None and api.conn.sock in ready:
            t_http = now
            status, data = api.response()
        if t_cc is None and s.sock in ready:
            s.fill()
            while True:
                m = s.next_buffered()
                if m is None:
                    break
                kind, mbody = m
                if kind == b"C":
                    tag = mbody.rstrip(b"\0").decode()
                    t_cc = now
                    break  # ReadyForQuery, read below
                elif kind == b"E":
                    raise Fail(f"session {i} (request {rid}): error after approve: {error_text(mbody)}")
                elif kind == b"N":
                    continue
                else:
                    raise Fail(f"session {i} (request {rid}): unexpected {kind!r} before CommandComplete")
    if status != 200:
        raise Fail(f"approve {rid}: HTTP {status}: {data[:300]!r}")
    state = json.loads(data).get("state")
    if state != "approved":
        raise Fail(f"approve {rid}: state {state!r} after the approve")
    if tag != "UPDATE 1":
        raise Fail(f"session {i} (request {rid}): ended with {tag!r}, not 'UPDATE 1'")
    # The rest of the reply: ReadyForQuery, idle.
    while True:
        kind, mbody = s.read_message()
        if kind == b"Z":
            if mbody != b"I":
                raise Fail(f"session {i}: ReadyForQuery {mbody!r} after the UPDATE, not idle")
            break
        if kind == b"E":
            raise Fail(f"session {i} (request {rid}): error after CommandComplete: {error_text(mbody)}")
    return wall0_us, (t_http - t0) * 1000.0, (t_cc - t0) * 1000.0


def query_starts(direct, ids, table="t"):
    """For the backend that ran each UPDATE: pg_stat_activity.query_start (when Postgres read
    the Query) and state_change (when it went idle, i.e. finished it), µs since the epoch."""
    rows, _ = direct.query(
        "SELECT query, state, (extract(epoch FROM query_start) * 1000000)::bigint, "
        "(extract(epoch FROM state_change) * 1000000)::bigint FROM pg_stat_activity "
        f"WHERE backend_type = 'client backend' AND query LIKE 'UPDATE {table} SET v = v + 1 WHERE id = %'")
    got = {}
    for q, state, start, done in rows:
        i = int(q.rsplit("=", 1)[1])
        if i in got:
            raise Fail(f"two backends ran the UPDATE of id {i}")
        if state != "idle":
            raise Fail(f"the backend of session {i} is {state!r} after its UPDATE, not idle")
        got[i] = (int(start), int(done))
    missing = [i for i in ids if i not in got]
    if missing:
        raise Fail(f"pg_stat_activity shows no UPDATE for {len(missing)} sessions (e.g. id {missing[0]})")
    return got


def baseline_batch(a, ids, direct):
    """The same pattern without jitgate: sessions straight to Postgres, one read each, idle
    for about as long as a batch of holds, then the UPDATE of t_direct, one session at a time.
    Returns (client ms, Postgres execution ms) per UPDATE."""
    sessions = {}
    try:
        for i in ids:
            s = Session(a.host, a.direct_port, a.direct_user, a.direct_db, a.direct_password)
            sessions[i] = s
            s.query(f"SELECT v FROM t_direct WHERE id = {i}")
        time.sleep(0.3)
        client, walls = [], {}
        for i in ids:
            s = sessions[i]
            walls[i] = time.time_ns() // 1000
            t0 = time.perf_counter()
            s.send(message(b"Q", f"UPDATE t_direct SET v = v + 1 WHERE id = {i}\0".encode()))
            while True:
                kind, body = s.read_message()
                if kind == b"C":
                    client.append((time.perf_counter() - t0) * 1000.0)
                    if body != b"UPDATE 1\0":
                        raise Fail(f"baseline {i}: {body!r}, not UPDATE 1")
                elif kind == b"E":
                    raise Fail(f"baseline {i}: {error_text(body)}")
                elif kind == b"Z":
                    break
        starts = query_starts(direct, ids, "t_direct")
        return client, [(starts[i][1] - starts[i][0]) / 1000.0 for i in ids], \
            [(starts[i][0] - walls[i]) / 1000.0 for i in ids]
    finally:
        for s in sessions.values():
            s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="jitgate's Postgres port")
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--user", default="alice")
    p.add_argument("--db", default="bench", help="jitgate target name")
    p.add_argument("--direct-port", type=int, required=True, help="Postgres itself")
    p.add_argument("--direct-user", default="bench")
    p.add_argument("--direct-db", default="bench")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rows", type=int, default=1000, help="rows in t (ids 1..rows)")
    p.add_argument("--allow-queries", type=int, default=2000)
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the direct-to-Postgres baseline (table t_direct)")
    p.add_argument("--connect-concurrency", type=int, default=8)
    p.add_argument("--target-ms", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=60.0, help="per approve, seconds")
    p.add_argument("--raw", help="write per-request timings (TSV) here")
    p.add_argument("--settle-ms", type=float, default=0.0,
                   help="how long the API may take to show a held request as pending")
    a = p.parse_args()
    a.password = os.environ["JG_PASSWORD"]
    a.direct_password = os.environ["DIRECT_PASSWORD"]
    token = os.environ["API_TOKEN"]
    if a.n < 1 or a.batch < 1 or a.n > a.rows:
        raise Fail("need 1 <= n <= rows and batch >= 1")

    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731

    allow = None
    if a.allow_queries > 0:
        log(f"allow path: {a.allow_queries} reads through jitgate and {a.allow_queries} directly, alternating")
        allow = allow_path(a)

    api = Api(a.host, a.api_port, token, a.timeout)
    direct = Session(a.host, a.direct_port, a.direct_user, a.direct_db, a.direct_password,
                     app="approvals-bench-check")
    http_ms, client_ms, upstream_ms, exec_ms, hold_ms, raw = [], [], [], [], [], []
    base_client, base_exec, base_send = [], [], []
    batches = math.ceil(a.n / a.batch)
    started = time.monotonic()
    for b in range(batches):
        ids = list(range(b * a.batch + 1, min(a.n, (b + 1) * a.batch) + 1))
        sessions = open_sessions(a, ids)
        try:
            rids = {}
            for i in ids:
                # One allowed read first, so the backend's caches hold t (its first statement
                # would otherwise pay for loading them) and the session is not fresh.
                rows, _ = sessions[i].query(f"SELECT v FROM t WHERE id = {i}")
                if rows != [["0"]]:
                    raise Fail(f"session {i}: v of id {i} is {rows!r} before its UPDATE, not 0")
                t = time.perf_counter()
                rids[i] = hold(sessions[i], i)
                hold_ms.append((time.perf_counter() - t) * 1000.0)
            # Every one of them must be pending on the API side too (untimed). Another
            # replica's API (--settle-ms) may show them a moment later.
            settle_until = time.monotonic() + a.settle_ms / 1000.0
            while True:
                status, data = api.call("GET", "/v1/requests?state=pending")
                if status != 200:
                    raise Fail(f"GET /v1/requests?state=pending: HTTP {status}: {data[:300]!r}")
                pending = {r["id"] for r in json.loads(data)}
                lost = [i for i in ids if rids[i] not in pending]
                if not lost or time.monotonic() >= settle_until:
                    break
                time.sleep(0.01)
            if lost:
                raise Fail(f"{len(lost)} held requests are not pending in the API (e.g. session {lost[0]})")
            time.sleep(0.3)  # let the impact previews (EXPLAIN on their own connections) finish
            walls = {}
            for i in ids:
                wall0, h, c = approve_and_time(api, sessions[i], i, rids[i], a.timeout)
                walls[i] = wall0
                http_ms.append(h)
                client_ms.append(c)
                raw.append([i, rids[i], h, c])
            starts = query_starts(direct, ids)
            for row in raw[-len(ids):]:
                start, done = starts[row[0]]
                u = (start - walls[row[0]]) / 1000.0
                upstream_ms.append(u)
                exec_ms.append((done - start) / 1000.0)
                row += [u, (done - start) / 1000.0]
        finally:
            for s in sessions.values():
                s.close()
        if not a.no_baseline:
            c, e, snd = baseline_batch(a, ids, direct)
            base_client += c
            base_exec += e
            base_send += snd
        log(f"batch {b + 1}/{batches}: {len(ids)} held and approved; client p50 "
            f"{pct(sorted(client_ms[-len(ids):]), 50):.3f} ms")
    elapsed = time.monotonic() - started
    direct.close()
    api.conn.close()

    if a.raw:
        with open(a.raw, "w") as f:
            f.write("id\trequest\thttp_ms\tclient_ms\tupstream_ms\tpg_exec_ms\n")
            for r in raw:
                f.write(f"{r[0]}\t{r[1]}\t{r[2]:.4f}\t{r[3]:.4f}\t{r[4]:.4f}\t{r[5]:.4f}\n")

    n = len(client_ms)
    print(f"approvals: {n} held writes approved one at a time ({batches} batches of up to {a.batch} "
          f"concurrent holds), {elapsed:.1f} s; every session ended with UPDATE 1; "
          f"{api.connections} HTTP connection(s) for {n + batches} API calls")
    print(f"  {'ms from just before the approve POST to':<48} {'count':>6} {'p50':>9} {'p90':>9} "
          f"{'p99':>9} {'max':>9}")
    su, sc, sh = summary(upstream_ms), summary(client_ms), summary(http_ms)
    print(fmt_row("... its HTTP response (approve call alone)", sh))
    print(fmt_row("... Postgres reading the statement (upstream)", su))
    print(fmt_row("... the client's CommandComplete (upper bound)", sc))
    print(fmt_row("(Postgres executing it: query_start->idle)", summary(exec_ms)))
    print(fmt_row("(hold: Query sent -> held notice)", summary(hold_ms)))
    print("  upstream = pg_stat_activity.query_start (set by Postgres when it reads the Query, µs) minus")
    print("    the wall clock taken beside t0; client = approve round trip + wake-up + forward +")
    print("    execution + the result's way back, so an upper bound of the upstream figure.")
    if base_client:
        print("  baseline without jitgate: the same UPDATE (of t_direct) sent straight to Postgres by an")
        print(f"  idle session of a batch of {a.batch} like the above, one at a time:")
        print(fmt_row("... send -> Postgres reading it", summary(base_send)))
        print(fmt_row("... send -> CommandComplete", summary(base_client)))
        print(fmt_row("(Postgres executing it: query_start->idle)", summary(base_exec)))
    neg = sum(1 for u in upstream_ms + base_send if u < 0)
    if neg:
        print(f"  WARNING: {neg} upstream figures are negative: the clocks disagree, ignore that row")
    if allow:
        sj, sd = summary(allow["jitgate"]), summary(allow["direct"])
        print(f"allow path: {sj['count']} reads (SELECT v FROM t WHERE id = k) each way, alternating, "
              f"ms per round trip:")
        print(fmt_row("through jitgate (read -> allow)", sj))
        print(fmt_row("direct", sd))
        print(f"  added per allowed statement: {1000 * (sj['p50'] - sd['p50']):.0f} µs at the median")
    for name, s in (("approve -> upstream, p99", su), ("approve -> CommandComplete (upper bound), p99", sc)):
        ok = s["p99"] <= a.target_ms
        print(f"  {'PASS' if ok else 'MISS'} {name:<46} {s['p99']:9.3f} ms (target <= {a.target_ms:g} ms)")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
