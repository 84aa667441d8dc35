#!/usr/bin/env bash
# Approval latency: the time from an approver's approve call to the held statement arriving
# upstream, p50/p90/p99 over N holds (the issue's target: <= 5 ms p99). See bench/README.md.
#
#   bash bench/approvals.sh [--quick] [-n N] [--batch B]
#
# N holds (default 1000; --quick: 200) in batches of B concurrent held sessions (default 100),
# each `UPDATE t SET v = v + 1 WHERE id = <i>` by alice (group dev), approved one at a time by
# bob (group sre) over the control API. Also prints a baseline (the same UPDATE sent straight
# to Postgres, batch by batch) and the allow-path cost per statement (reads).
# env: N, BATCH, ALLOW_QUERIES (allowed reads each way, default 2000; 0 skips it),
#      BASELINE=0 (skip the baseline),
#      JITGATE_BIN (a prebuilt binary; otherwise `cargo build --release`),
#      BENCH_KEEP_TMP=1 (keep the temp dir when the run fails), RAW=FILE (per-request TSV).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${N:-1000}
BATCH=${BATCH:-100}
ALLOW_QUERIES=${ALLOW_QUERIES:-2000}
RAW=${RAW:-}
BASELINE=${BASELINE:-1}
API_TOKEN=bob-token   # bob's bearer token (throwaway set-up; jitgate stores only its SHA-256)

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) N=200 ALLOW_QUERIES=500 ;;
        -n) N=${2:?-n needs a number}; shift ;;
        --batch) BATCH=${2:?--batch needs a number}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[[ $N =~ ^[0-9]+$ && $N -ge 1 ]] || die "N must be >= 1"
[[ $BATCH =~ ^[0-9]+$ && $BATCH -ge 1 ]] || die "BATCH must be >= 1"
[[ $ALLOW_QUERIES =~ ^[0-9]+$ ]] || die "ALLOW_QUERIES must be a whole number"
((BATCH <= N)) || BATCH=$N
ROWS=$(((N > 1000 ? N : 1000) + 100))   # rows past N must stay untouched

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2119 # no argument: pgbouncer is not needed here
ensure_deps
command -v python3 >/dev/null || apt_install python3
build_jitgate

# Each held session: a client socket here, two in jitgate; plus slack.
need_fds=$((3 * BATCH + 256))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $need_fds ]]; then
    ulimit -n "$need_fds" 2>/dev/null || die "need $need_fds open files, the limit is $(ulimit -n): lower BATCH"
fi

bench_tmp
# A batch holds BATCH upstream backends at once, and the baseline's batch of direct sessions
# may open before the last ones have exited; + the checking session, the allow-path sessions,
# jitgate's impact previews (at most 4 at once) and psql.
start_pg $((2 * BATCH + 50))

log "tables t and t_direct (the baseline's): $ROWS rows each (directly against Postgres)"
psql_direct >/dev/null <<SQL
CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO t SELECT g, 0 FROM generate_series(1, $ROWS) g;
CREATE TABLE t_direct (LIKE t INCLUDING ALL);
INSERT INTO t_direct SELECT * FROM t;
VACUUM ANALYZE t, t_direct;
SQL

# jitgate: alice (dev) logs in with a password; bob (sre) approves with a token.
# Rules: reads pass, writes wait for one approver of group sre.
approvals_setup

write_config() {
    cat >"$TMP/jitgate.toml" <<EOF
[server]
postgres_listen = "127.0.0.1:$JG_PORT"
api_listen = "127.0.0.1:$API_PORT"
data_dir = "$TMP/jitgate-data"

$(approvals_policy)
EOF
}

# start_jitgate_once: 0 once /healthz answers 200; 2 when it could not bind (a port free_port
# chose was taken meanwhile: free_port sees listeners only, and its range overlaps the
# ephemeral one, 32768-60999 here).
start_jitgate_once() {
    JG_PORT=$(free_port "$PG_PORT")
    API_PORT=$(free_port "$PG_PORT" "$JG_PORT")
    [[ -n $JG_PORT && -n $API_PORT ]] || die "no free ports"
    write_config
    "$JITGATE_BIN" check-config --config "$TMP/jitgate.toml" >"$TMP/check-config.out" 2>&1 \
        || { cat "$TMP/check-config.out" >&2; die "jitgate check-config rejected the bench config"; }
    log "start jitgate on 127.0.0.1:$JG_PORT (API 127.0.0.1:$API_PORT): $JITGATE_BIN"
    "$JITGATE_BIN" serve --config "$TMP/jitgate.toml" >"$TMP/jitgate.log" 2>&1 &
    JG_PID=$!
    local code=000
    for _ in $(seq 1 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$API_PORT/healthz" 2>/dev/null) || true
        [[ $code == 200 ]] && return 0
        if [[ ! -e /proc/$JG_PID ]] || [[ $(awk '{print $3}' "/proc/$JG_PID/stat" 2>/dev/null) == Z ]]; then
            wait "$JG_PID" 2>/dev/null || true
            JG_PID=""
            if grep -q 'cannot bind' "$TMP/jitgate.log"; then
                log "$(tail -n 1 "$TMP/jitgate.log"); trying other ports"
                return 2
            fi
            tail -n 30 "$TMP/jitgate.log" >&2 || true
            die "jitgate exited before /healthz answered 200 (its log is above)"
        fi
        sleep 0.1
    done
    tail -n 30 "$TMP/jitgate.log" >&2 || true
    die "jitgate: GET /healthz = $code after 30 s"
}
for attempt in 1 2 3; do
    start_jitgate_once && break
    [[ $attempt -lt 3 ]] || die "jitgate could not bind its ports, 3 times"
done
out=$(PGPASSWORD=$CLIENT_PW psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$JG_PORT" -U alice \
    -d bench -c "SELECT count(*) FROM t" 2>&1) || { tail -n 20 "$TMP/jitgate.log" >&2 || true; die "psql through jitgate failed: $out"; }
[[ $out == "$ROWS" ]] || die "psql through jitgate: SELECT count(*) FROM t gave '$out', not $ROWS"

log "$N holds, $BATCH at a time, approved one by one by bob; allow path: $ALLOW_QUERIES reads each way"
rss0=$(rss_kib "$JG_PID")
c0=$(cpu_ticks "$JG_PID")
client_opts=()
[[ $BASELINE == 0 ]] && client_opts+=(--no-baseline)
rc=0
JG_PASSWORD=$CLIENT_PW DIRECT_PASSWORD=$UPSTREAM_PW API_TOKEN=$API_TOKEN \
    python3 "$BENCH_DIR/approvals_client.py" --port "$JG_PORT" --api-port "$API_PORT" \
    --direct-port "$PG_PORT" --n "$N" --batch "$BATCH" --rows "$ROWS" \
    --allow-queries "$ALLOW_QUERIES" --raw "$TMP/raw.tsv" "${client_opts[@]}" >"$TMP/client.out" 2>"$TMP/client.err" &
CLIENT_PID=$!
EXTRA_PIDS+=("$CLIENT_PID")
wait "$CLIENT_PID" || rc=$?
EXTRA_PIDS=()
c1=$(cpu_ticks "$JG_PID")
cat "$TMP/client.err" >&2
if [[ $rc -ne 0 ]]; then
    cat "$TMP/client.out"
    echo "--- jitgate log (tail) ---" >&2
    tail -n 20 "$TMP/jitgate.log" >&2
    die "approvals_client.py exited $rc (above)"
fi
[[ -n $RAW ]] && cp "$TMP/raw.tsv" "$RAW"

# Exactly once, checked against Postgres itself: ids 1..N went from 0 to 1, the others stayed 0.
read -r once other wrong < <(psql_direct -At -F ' ' -c \
    "SELECT count(*) FILTER (WHERE id <= $N AND v = 1), count(*) FILTER (WHERE id > $N AND v = 0),
            count(*) FILTER (WHERE NOT ((id <= $N AND v = 1) OR (id > $N AND v = 0))) FROM t")
states=$(curl -s -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$API_PORT/v1/requests" \
    | python3 -c '
import collections, json, sys
rs = json.load(sys.stdin)
c = collections.Counter(r["state"] for r in rs)
i = collections.Counter("estimate" if (r.get("impact") or {}).get("estimated_rows") is not None
                        else (r.get("impact") or {}).get("error") or "none" for r in rs)
print(" ".join(f"{k}={v}" for k, v in sorted(c.items())) + "; impact preview: "
      + ", ".join(f"{v} {k}" for k, v in i.most_common()))')

echo
echo "jitgate approvals bench $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); N=$N, batch $BATCH"
cat "$TMP/client.out"
echo "check against Postgres: $once of $N rows incremented exactly once, $other of $((ROWS - N)) others untouched, $wrong wrong"
echo "requests in the API: $states"
awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$N" -v r0="$rss0" -v r1="$(rss_kib "$JG_PID")" \
    -v w="$(grep -ciE 'warn|error' "$TMP/jitgate.log" || true)" \
    'BEGIN {printf "jitgate CPU during the run: %.2f s (%.0f µs per hold, all phases incl. connects and allow path); RSS %d -> %d KiB; warnings/errors in its log: %d\n", d / hz, d * 1e6 / hz / n, r0, r1, w}'
[[ $once -eq $N && $other -eq $((ROWS - N)) && $wrong -eq 0 ]] \
    || die "rows in t are not what exactly-once approval would leave (above)"
