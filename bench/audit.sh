#!/usr/bin/env bash
# jitgate benchmark: what the audit trail costs. Two jitgates in front of one Postgres, one
# recording ([audit] on, the default) and one not ([audit] enabled = false), driven alternately
# by pgbench in one run, plus direct Postgres for reference. See bench/README.md.
#
#   bash bench/audit.sh [--quick] [--durable] [-T SECONDS] [--rounds N]
#
# --durable: Postgres with fsync, synchronous_commit and full_page_writes on (what users run:
# Postgres's own commit flush then stands beside jitgate's). Default: durability off.
# JITGATE_BASELINE_BIN=PATH: a third jitgate (another build, audit on) run alternately with the
# other two, reported as `base-on`, so a change is measured against its baseline in one run.
#
# Reports, per workload: tps of audit-on / audit-off (target: select-only >= 0.95), jitgate's
# CPU per pgbench transaction (utime + stime of the process, all threads) per target, the store's
# event throughput (events per second committed while audit-on ran), and the flush latency that
# an allowed write waits for (it is on disk before it runs): pgbench -c 1 latency of a one-row
# UPDATE, audit-on minus audit-off, and jitgate_audit_flush_seconds from /metrics; and the
# store's growth per event (bytes the audit data directory gained during the audit-on runs,
# `du`, divided by the events committed meanwhile), and per statement: events and store bytes
# per statement pgbench ran (a result joined to its statement makes one event of two; a text
# stored once per session makes the later events smaller).
#
# env: T (seconds per run, default 10), ROUNDS (3), CLIENTS (8), THREADS (2), SCALE (10),
#      WORKLOADS (which of "select-only tpc-b update" to run; all by default),
#      JITGATE_BIN (a prebuilt binary; otherwise `cargo build --release`).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=${T:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) T=3 ROUNDS=1 ;;
        --durable) PG_DURABLE=1 ;;
        -T) T=${2:?-T needs seconds}; shift ;;
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[[ $T =~ ^[0-9]+$ && $T -ge 1 ]] || die "T must be a whole number of seconds >= 1"

# The runs: workload, pgbench mode, clients. WORKLOADS (env) keeps those whose workload it
# names, e.g. WORKLOADS="tpc-b update".
SPECS=()
for spec in "select-only simple $CLIENTS" "select-only extended $CLIENTS" "tpc-b extended $CLIENTS" "update extended 1"; do
    [[ " ${WORKLOADS:-select-only tpc-b update} " == *" ${spec%% *} "* ]] && SPECS+=("$spec")
done
[[ ${#SPECS[@]} -gt 0 ]] || die "WORKLOADS=$WORKLOADS names none of: select-only tpc-b update"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

ensure_deps
build_jitgate
bench_tmp

start_pg 100
log "pgbench -i -s $SCALE (directly against Postgres)"
PGPASSWORD=$UPSTREAM_PW pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U bench bench \
    >"$TMP/pgbench-init.log" 2>&1 || { tail -n 20 "$TMP/pgbench-init.log" >&2; die "pgbench -i failed"; }
psql_direct -c "VACUUM ANALYZE" >/dev/null

EXTRA_PIDS=()
start_jitgate audit-on ""
ON_PORT=$JG_PORT ON_API=$API_PORT ON_PID=$JG_PID
EXTRA_PIDS+=("$JG_PID")
start_jitgate audit-off $'[audit]\nenabled = false'
OFF_PORT=$JG_PORT OFF_API=$API_PORT OFF_PID=$JG_PID
EXTRA_PIDS+=("$JG_PID")
TARGETS=(direct audit-off audit-on)
BASE_PORT="" BASE_API="" BASE_PID=""
if [[ -n ${JITGATE_BASELINE_BIN:-} ]]; then
    [[ -x $JITGATE_BASELINE_BIN ]] || die "JITGATE_BASELINE_BIN=$JITGATE_BASELINE_BIN is not an executable"
    NEW_BIN=$JITGATE_BIN JITGATE_BIN=$JITGATE_BASELINE_BIN
    start_jitgate base-on ""
    JITGATE_BIN=$NEW_BIN
    BASE_PORT=$JG_PORT BASE_API=$API_PORT BASE_PID=$JG_PID
    EXTRA_PIDS+=("$JG_PID")
    TARGETS+=(base-on)
fi
JG_PID=""

printf '\\set aid random(1, %d)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n' \
    "$((SCALE * 100000))" >"$TMP/update.sql"

metric() {  # metric API_PORT NAME: the sample's value (0 if absent)
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2; f=1} END {if (!f) print 0}'
}

RESULTS=$TMP/results.tsv   # round workload mode target clients tps lat_avg_ms events lat_med_us store_bytes transactions cpu_us_tx
: >"$RESULTS"

# run_one ROUND WORKLOAD MODE TARGET CLIENTS
run_one() {
    local round=$1 workload=$2 mode=$3 target=$4 clients=$5 port pw args=() out rc=0 e0=0 e1=0
    local api="" data="" b0=0 b1=0 pid="" c0=0 c1=0
    case $target in
        direct) port=$PG_PORT pw=$UPSTREAM_PW ;;
        audit-on) port=$ON_PORT pw=$CLIENT_PW api=$ON_API data=$TMP/audit-on-data pid=$ON_PID ;;
        audit-off) port=$OFF_PORT pw=$CLIENT_PW pid=$OFF_PID ;;
        base-on) port=$BASE_PORT pw=$CLIENT_PW api=$BASE_API data=$TMP/base-on-data pid=$BASE_PID ;;
    esac
    case $workload in
        select-only) args=(-S) ;;
        tpc-b) psql_direct -c "TRUNCATE pgbench_history" >/dev/null ;;
        update) args=(-f "$TMP/update.sql") ;;
    esac
    out=$TMP/r$round-$workload-$mode-$target-c$clients.out
    if [[ -n $api ]]; then
        e0=$(metric "$api" jitgate_audit_events_total)
        b0=$(du -sB1 "$data" | cut -f1)
    fi
    rm -f "$out".tx*
    [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    PGPASSWORD=$pw pgbench -n "${args[@]}" -M "$mode" -c "$clients" -j "$(( clients < THREADS ? clients : THREADS ))" \
        -T "$T" -h 127.0.0.1 -p "$port" -U bench -l --log-prefix="$out.tx" bench >"$out" 2>&1 || rc=$?
    [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
    if [[ -n $api ]]; then
        e1=$(metric "$api" jitgate_audit_events_total)
        b1=$(du -sB1 "$data" | cut -f1)
    fi
    [[ $rc -eq 0 ]] || { tail -n 20 "$out" >&2; die "pgbench $workload $mode $target failed"; }
    local tps lat med txs
    tps=$(awk '/^tps = / {print $3; exit}' "$out")
    txs=$(awk '/^number of transactions actually processed: / {split($6, n, "/"); print n[1]; exit}' "$out")
    lat=$(awk '/^latency average = / {print $4}' "$out")
    med=$(log_median_us "$out".tx*)
    rm -f "$out".tx*
    [[ -n $tps && -n $lat ]] || { cat "$out" >&2; die "could not parse $out"; }
    local cpu=0
    [[ -n $pid && ${txs:-0} -gt 0 ]] && cpu=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$txs" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$workload" "$mode" "$target" "$clients" \
        "$tps" "$lat" "$(awk -v a="$e0" -v b="$e1" 'BEGIN {printf "%d", b - a}')" "$med" "$((b1 - b0))" "${txs:-0}" "$cpu" >>"$RESULTS"
    log "$(printf '%-12s %-9s %-9s c%-2s tps %9.0f  lat %7.3f ms  med %6s µs  cpu %6s µs/tx' "$workload" "$mode" "$target" "$clients" "$tps" "$lat" "$med" "$cpu")"
}

log "warm-up"
port_of() { case $1 in direct) echo "$PG_PORT" ;; audit-on) echo "$ON_PORT" ;; audit-off) echo "$OFF_PORT" ;; base-on) echo "$BASE_PORT" ;; esac; }
for target in "${TARGETS[@]}"; do
    PGPASSWORD=$([[ $target == direct ]] && echo "$UPSTREAM_PW" || echo "$CLIENT_PW") \
        pgbench -n -S -c 2 -T 2 -h 127.0.0.1 -p "$(port_of "$target")" \
        -U bench bench >/dev/null 2>&1 || die "warm-up through $target failed"
done

for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS"
    for spec in "${SPECS[@]}"; do
        read -r workload mode clients <<<"$spec"
        # Alternate the order each round so drift hits both alike.
        if (( round % 2 )); then
            order=("${TARGETS[@]}")
        else
            order=(); for (( i = ${#TARGETS[@]} - 1; i >= 0; i-- )); do order+=("${TARGETS[i]}"); done
        fi
        for target in "${order[@]}"; do run_one "$round" "$workload" "$mode" "$target" "$clients"; done
    done
done

flush_sum=$(metric "$ON_API" jitgate_audit_flush_seconds_sum)
flush_count=$(metric "$ON_API" jitgate_audit_flush_seconds_count)
waits=$(metric "$ON_API" 'jitgate_audit_backpressure_waits_total{protocol="postgres"}')

echo
echo "## audit on / audit off ($ROUNDS rounds of ${T}s, median tps; Postgres $([[ -n $PG_DURABLE ]] && echo durable || echo 'fsync off'); $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
echo
echo "| workload | mode | clients | direct tps | audit-off tps | audit-on tps | on/off | base-on tps | base/off | on/base | events/s (on) | store bytes/event (on) | store bytes/event (base) | events/statement (on) | events/statement (base) | store bytes/statement (on) | store bytes/statement (base) | CPU µs/tx on / off / base |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for spec in "${SPECS[@]}"; do
    read -r workload mode clients <<<"$spec"
    # Statements per pgbench transaction: TPC-B is BEGIN, 3 UPDATEs, a SELECT, an INSERT, END.
    awk -F'\t' -v w="$workload" -v m="$mode" -v c="$clients" -v T="$T" -v spt="$([[ $workload == tpc-b ]] && echo 7 || echo 1)" '
        function median(arr, n,   i, j, t) {
            if (n == 0) return 0
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
            return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
        }
        function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.3f", a / b) : "-" }
        $2 == w && $3 == m && $5 == c {
            k = $4; n[k]++; tps[k, n[k]] = $6; lat[k, n[k]] = $9; cpu[k, n[k]] = $12
            ev[k] += $8; bytes[k] += $10; stmts[k] += $11 * spt
        }
        function per(a, b) { return b > 0 ? a / b : 0 }
        END {
            split("direct audit-off audit-on base-on", ks, " ")
            for (x = 1; x <= 4; x++) { k = ks[x]; delete a; for (i = 1; i <= n[k]; i++) a[i] = tps[k, i]; med[k] = median(a, n[k])
                delete b; for (i = 1; i <= n[k]; i++) b[i] = lat[k, i]; mlat[k] = median(b, n[k])
                delete cc; for (i = 1; i <= n[k]; i++) cc[i] = cpu[k, i]; mcpu[k] = median(cc, n[k]) }
            printf "| %s | %s | %s | %.0f | %.0f | %.0f | %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %.0f / %.0f / %s |\n", w, m, c, med["direct"], med["audit-off"], med["audit-on"],
                ratio(med["audit-on"], med["audit-off"]), n["base-on"] ? sprintf("%.0f", med["base-on"]) : "-",
                ratio(med["base-on"], med["audit-off"]), ratio(med["audit-on"], med["base-on"]),
                n["audit-on"] ? ev["audit-on"] / (n["audit-on"] * T) : 0,
                ev["audit-on"] ? sprintf("%.0f", bytes["audit-on"] / ev["audit-on"]) : "-",
                ev["base-on"] ? sprintf("%.0f", bytes["base-on"] / ev["base-on"]) : "-",
                stmts["audit-on"] ? sprintf("%.2f", per(ev["audit-on"], stmts["audit-on"])) : "-",
                stmts["base-on"] ? sprintf("%.2f", per(ev["base-on"], stmts["base-on"])) : "-",
                stmts["audit-on"] ? sprintf("%.0f", per(bytes["audit-on"], stmts["audit-on"])) : "-",
                stmts["base-on"] ? sprintf("%.0f", per(bytes["base-on"], stmts["base-on"])) : "-",
                mcpu["audit-on"], mcpu["audit-off"], n["base-on"] ? sprintf("%.0f", mcpu["base-on"]) : "-"
            if (c == 1) {
                printf "\nadded latency of an allowed autocommit write (-c 1 UPDATE, median µs): audit-on %+.0f over audit-off (%.0f vs %.0f)", mlat["audit-on"] - mlat["audit-off"], mlat["audit-on"], mlat["audit-off"]
                if (n["base-on"]) printf "; base-on %+.0f", mlat["base-on"] - mlat["audit-off"]
                printf "\n"
            }
        }' "$RESULTS"
done
for t in audit-on base-on; do
    api=$([[ $t == audit-on ]] && echo "$ON_API" || echo "$BASE_API")
    [[ -n $api ]] || continue
    flush_sum=$(metric "$api" jitgate_audit_flush_seconds_sum)
    flush_count=$(metric "$api" jitgate_audit_flush_seconds_count)
    events=$(metric "$api" jitgate_audit_events_total)
    waits=$(metric "$api" 'jitgate_audit_backpressure_waits_total{protocol="postgres"}')
    awk -v t="$t" -v s="$flush_sum" -v c="$flush_count" -v e="$events" -v w="$waits" 'BEGIN {
        printf "%s: %d events in %d store commits (%.1f events/commit), mean commit (encode + write + flush) %.3f ms; sessions waited for the audit writer: %d times\n", t, e, c, c ? e / c : 0, c ? s / c * 1000 : 0, w }'
done
