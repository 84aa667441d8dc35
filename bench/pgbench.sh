#!/usr/bin/env bash
# jitgate benchmark: pgbench through direct Postgres, pgbouncer (session mode) and jitgate, in
# one run, alternating the three so machine noise hits them alike. See bench/README.md.
#
#   bash bench/pgbench.sh [--quick] [--durable] [-T SECONDS] [--rounds N]
#
# --durable: Postgres with fsync, synchronous_commit and full_page_writes on (what users run).
#
# env: T (seconds per run, default 10), ROUNDS (default 3), CLIENTS (8), THREADS (2), SCALE (10),
#      WORKLOADS ("select-only tpc-b"), MODES ("simple extended prepared"): the -c CLIENTS runs
#      to do (the -c 1 latency runs, direct, pgbouncer and the jitgates, are select-only
#      extended whatever these say; C1=0 skips them),
#      JITGATE_BIN (a prebuilt binary; otherwise `cargo build --release`),
#      JITGATE_BASELINE_BIN (another jitgate build, run alternately as target `baseline`),
#      BENCH_SKIP_JITGATE=1 (debugging aid: direct and pgbouncer only),
#      BENCH_KEEP_TMP=1 (keep the temp dir when the run fails).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=${T:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
SKIP_JG=${BENCH_SKIP_JITGATE:-}
read -r -a WORKLOADS <<<"${WORKLOADS:-select-only tpc-b}"
read -r -a MODES <<<"${MODES:-simple extended prepared}"
C1=${C1:-1}
BASE_BIN=${JITGATE_BASELINE_BIN:-}

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
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be >= 1"
for w in "${WORKLOADS[@]}"; do [[ $w == select-only || $w == tpc-b ]] || die "WORKLOADS: unknown workload $w"; done
for m in "${MODES[@]}"; do [[ $m == simple || $m == extended || $m == prepared ]] || die "MODES: unknown mode $m"; done
if [[ -n $BASE_BIN ]]; then
    [[ -z $SKIP_JG ]] || die "JITGATE_BASELINE_BIN and BENCH_SKIP_JITGATE exclude each other"
    [[ -x $BASE_BIN ]] || die "JITGATE_BASELINE_BIN=$BASE_BIN is not an executable"
fi

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

ensure_deps pgbouncer
if [[ -z $SKIP_JG ]]; then build_jitgate; fi
bench_tmp

start_pg 200
log "pgbench -i -s $SCALE (directly against Postgres)"
PGPASSWORD=$UPSTREAM_PW pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U bench bench \
    >"$TMP/pgbench-init.log" 2>&1 || { tail -n 20 "$TMP/pgbench-init.log" >&2; die "pgbench -i failed"; }
psql_direct -c "VACUUM ANALYZE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history" >/dev/null

start_pgbouncer "$((CLIENTS + 4))"
TARGETS=(direct pgbouncer)
if [[ -n $BASE_BIN ]]; then
    NEW_BIN=$JITGATE_BIN JITGATE_BIN=$BASE_BIN
    start_jitgate baseline
    JITGATE_BIN=$NEW_BIN
    BASE_PORT=$JG_PORT BASE_PID=$JG_PID
    EXTRA_PIDS+=("$JG_PID")
fi
if [[ -z $SKIP_JG ]]; then
    start_jitgate
    TARGETS+=(jitgate)
    [[ -n $BASE_BIN ]] && TARGETS+=(baseline)
else
    log "BENCH_SKIP_JITGATE is set: jitgate is not started (debugging aid)"
fi

port_of() { case $1 in direct) echo "$PG_PORT" ;; pgbouncer) echo "$BOUNCER_PORT" ;; jitgate) echo "$JG_PORT" ;; baseline) echo "$BASE_PORT" ;; esac; }
pw_of() { if [[ $1 == jitgate || $1 == baseline ]]; then echo "$CLIENT_PW"; else echo "$UPSTREAM_PW"; fi; }
pid_of() { case $1 in pgbouncer) echo "$BOUNCER_PID" ;; jitgate) echo "$JG_PID" ;; baseline) echo "$BASE_PID" ;; *) echo "" ;; esac; }


RESULTS=$TMP/results.tsv   # round workload mode target clients tps lat_avg_ms lat_med_us tx cpu_us_tx
: >"$RESULTS"

# run_one ROUND WORKLOAD MODE TARGET CLIENTS THREADS SECONDS [record|warmup]
run_one() {
    local round=$1 workload=$2 mode=$3 target=$4 clients=$5 threads=$6 secs=$7 what=${8:-record}
    local port pw pid name out script=() c0=0 c1=0 rc=0
    port=$(port_of "$target"); pw=$(pw_of "$target"); pid=$(pid_of "$target")
    [[ $workload == select-only ]] && script=(-S)
    if [[ $workload == tpc-b ]]; then
        # What pgbench's own pre-run vacuum does, done directly and untimed, so bloat does not
        # build up over the run (and no VACUUM has to pass through a proxy).
        psql_direct -c "VACUUM pgbench_branches" -c "VACUUM pgbench_tellers" \
            -c "TRUNCATE pgbench_history" >/dev/null
    fi
    name=r${round}-${workload}-${mode}-${target}-c${clients}
    out=$TMP/logs/$name.out
    rm -f "$TMP/logs/$name".tx*
    [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    PGPASSWORD=$pw pgbench -n "${script[@]}" -M "$mode" -c "$clients" -j "$threads" -T "$secs" \
        -h 127.0.0.1 -p "$port" -U bench -l --log-prefix="$TMP/logs/$name.tx" bench >"$out" 2>&1 || rc=$?
    [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
    if [[ $rc -ne 0 ]]; then
        tail -n 25 "$out" >&2
        [[ $target == jitgate || $target == baseline ]] && { echo "--- $target log (tail) ---" >&2; tail -n 15 "$TMP/$target.log" >&2; }
        die "pgbench $name exited $rc (output above)"
    fi
    local tx failed tps lat_avg lat_med cpu conn_ms
    tx=$(awk -F': *' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1]}' "$out")
    failed=$(awk -F': *' '/^number of failed transactions/ {split($2, a, " "); print a[1]}' "$out")
    tps=$(awk '/^tps = / {print $3; exit}' "$out")
    lat_avg=$(awk '/^latency average = / {print $4}' "$out")
    conn_ms=$(awk '/^initial connection time = / {print $5}' "$out")
    [[ -n $tx ]] || { cat "$out" >&2; die "could not parse pgbench output of $name"; }
    [[ ${failed:-0} == 0 ]] || { tail -n 25 "$out" >&2; die "pgbench $name: $failed failed transactions"; }
    if [[ $tx -eq 0 ]]; then
        # pgbench's -T clock starts before its clients connect: a slow connect eats the run.
        local why="pgbench $name processed no transaction in ${secs}s (slow connection set-up?)"
        if [[ $what == warmup ]]; then log "warning: $why"; rm -f "$TMP/logs/$name".tx*; return 0; fi
        tail -n 25 "$out" >&2
        die "$why"
    fi
    [[ -n $tps && -n $lat_avg ]] || { cat "$out" >&2; die "could not parse pgbench output of $name"; }
    lat_med=$(log_median_us "$TMP/logs/$name".tx*)
    rm -f "$TMP/logs/$name".tx*
    if [[ -n $pid ]]; then
        cpu=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$tx" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')
    else
        cpu=-
    fi
    [[ $what == record ]] || return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$workload" "$mode" "$target" \
        "$clients" "$tps" "$lat_avg" "$lat_med" "$tx" "$cpu" >>"$RESULTS"
    log "$(printf '%-31s tps %9.0f  lat avg %6.3f ms  med %6s µs  tx %8s  cpu %s µs/tx  connect %s ms' \
        "$workload $mode $target" "$tps" "$lat_avg" "$lat_med" "$tx" "$cpu" "${conn_ms:-?}")"
}

C1_TARGETS=()
if [[ $C1 != 0 ]]; then
    C1_TARGETS=(direct)
    # pgbouncer too, for what any proxy adds on this host (a wake-up per hop).
    [[ " ${TARGETS[*]} " == *" pgbouncer "* ]] && C1_TARGETS+=(pgbouncer)
    [[ -z $SKIP_JG ]] && C1_TARGETS+=(jitgate)
    [[ -n $BASE_BIN ]] && C1_TARGETS+=(baseline)
fi
nruns=$((ROUNDS * (${#WORKLOADS[@]} * ${#MODES[@]} * ${#TARGETS[@]} + ${#C1_TARGETS[@]})))
log "$nruns runs of ${T}s (-c $CLIENTS -j $THREADS, then -c 1), rounds: $ROUNDS, targets: ${TARGETS[*]}"

log "warm-up (not recorded)"
for target in "${TARGETS[@]}"; do run_one 0 select-only simple "$target" "$CLIENTS" "$THREADS" 3 warmup; done

for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS, -c $CLIENTS"
    for workload in "${WORKLOADS[@]}"; do
        for mode in "${MODES[@]}"; do
            for target in "${TARGETS[@]}"; do
                run_one "$round" "$workload" "$mode" "$target" "$CLIENTS" "$THREADS" "$T"
            done
        done
    done
done

for round in $(seq 1 "$ROUNDS"); do
    [[ ${#C1_TARGETS[@]} -gt 0 ]] || break
    log "round $round/$ROUNDS, -c 1 latency"
    for target in "${C1_TARGETS[@]}"; do
        run_one "$round" select-only extended "$target" 1 1 "$T"
    done
done

# --- report ------------------------------------------------------------------------------
echo
echo "jitgate bench $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname), $(nproc) cores; pgbench $(pgbench --version | awk '{print $3}'), -c $CLIENTS -j $THREADS, ${T}s x $ROUNDS rounds, scale $SCALE; Postgres $([[ -n $PG_DURABLE ]] && echo 'durable (fsync, synchronous_commit on)' || echo 'fsync off')"
[[ -n $SKIP_JG ]] && echo "(BENCH_SKIP_JITGATE: jitgate not run)"
awk -F'\t' -v skip="$SKIP_JG" -v clients="$CLIENTS" '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    if (n == 0) return "nan"
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(arr, k, v) { arr[k] = (k in arr) ? arr[k] " " v : v }
{
    round = $1; w = $2; m = $3; t = $4; c = $5
    key = w SUBSEP m SUBSEP t SUBSEP c
    add(TPS, key, $6); add(MED, key, $8); add(AVG, key, $7)
    if ($10 != "-") add(CPU, key, $10)
    tps[round, key] = $6; med[round, key] = $8; cpu[round, key] = $10
    seen[key] = 1; rounds[round] = 1
    if (t == "baseline") has_baseline = 1
}
END {
    split("select-only tpc-b", W, " "); split("simple extended prepared", M, " ")
    split("direct pgbouncer jitgate baseline", T, " ")
    printf "\n%-12s %-9s %-10s %10s %11s %11s %9s %10s %9s\n", "workload", "mode", "target", "tps", "lat med us", "lat avg ms", "x direct", "CPU us/tx", "CPU x pgb"
    for (wi = 1; wi <= 2; wi++) for (mi = 1; mi <= 3; mi++) for (ti = 1; ti <= 4; ti++) {
        w = W[wi]; m = M[mi]; t = T[ti]; key = w SUBSEP m SUBSEP t SUBSEP clients
        if (!(key in seen)) { if (t == "jitgate" && skip != "") printf "%-12s %-9s %-10s %10s\n", w, m, t, "skipped"; continue }
        ratio = per_round(w, m, t, "direct", clients, tps)
        # CPU per transaction against pgbouncer: per round, then the median of the ratios
        cpu_ratio = per_round(w, m, t, "pgbouncer", clients, cpu)
        cpu_med = (key in CPU) ? sprintf("%.2f", median(CPU[key])) : "-"
        printf "%-12s %-9s %-10s %10.0f %11.0f %11.3f %9s %10s %9s\n", w, m, t, median(TPS[key]), median(MED[key]), median(AVG[key]), (t == "direct") ? "1.00" : fmt(ratio), cpu_med, (t == "direct" || t == "pgbouncer") ? "" : fmt(cpu_ratio)
        R[w, m, t] = ratio; C[w, m, t] = cpu_med; CR[w, m, t] = cpu_ratio
        TR[w, m, t] = per_round(w, m, t, "pgbouncer", clients, tps)
        if (t == "jitgate") { BR[w, m] = per_round(w, m, "jitgate", "baseline", clients, cpu) }
    }
    if (has_baseline) {
        printf "\njitgate against baseline (per-round ratios, median): CPU/tx"
        for (wi = 1; wi <= 2; wi++) for (mi = 1; mi <= 3; mi++) if ((W[wi], M[mi]) in BR && BR[W[wi], M[mi]] != "nan") printf "  %s %s %s", W[wi], M[mi], fmt(BR[W[wi], M[mi]])
        printf "\n"
    }
    # -c 1 latency: per round a target median minus direct median, then the median of those
    if (("select-only" SUBSEP "extended" SUBSEP "pgbouncer" SUBSEP 1) in MED) c1_line("pgbouncer")
    added = c1_line("jitgate")
    if (has_baseline) c1_line("baseline")

    printf "\ntargets (jitgate, issue 15):\n"
    if (skip != "") { print "  n/a: jitgate skipped"; exit }
    for (mi = 1; mi <= 3; mi++) target("CPU/tx x pgbouncer, select-only " M[mi] " -c " clients, CR["select-only", M[mi], "jitgate"], "<=", 1.00, "x")
    target("CPU/tx, select-only extended -c " clients " (moonshot)", C["select-only", "extended", "jitgate"], "<=", 10, " µs")
    target("tps x pgbouncer, select-only extended -c " clients, TR["select-only", "extended", "jitgate"], ">=", 1.00, "x")
    target("added latency, -c 1 select-only extended", added, "<=", 20, " µs")
    printf "  (pgbouncer for reference: CPU/tx select-only extended %s µs, %sx direct tps)\n", C["select-only", "extended", "pgbouncer"], fmt(R["select-only", "extended", "pgbouncer"])
}
function fmt(v) { return (v == "" || v == "nan") ? "-" : sprintf("%.2f", v) }
# per_round(W, M, T, BASE, CLIENTS, ARR): median over rounds of ARR[r, T] / ARR[r, BASE]
function per_round(w, m, t, base, c, arr,    r, k, b, ratios) {
    k = w SUBSEP m SUBSEP t SUBSEP c; b = w SUBSEP m SUBSEP base SUBSEP c; ratios = ""
    for (r in rounds) if (((r, k) in arr) && ((r, b) in arr) && arr[r, b] != "-" && arr[r, b] > 0) ratios = ratios " " arr[r, k] / arr[r, b]
    return median(ratios)
}
function c1_line(t,    dkey, key, diffs, r, added) {
    dkey = "select-only" SUBSEP "extended" SUBSEP "direct" SUBSEP 1
    key = "select-only" SUBSEP "extended" SUBSEP t SUBSEP 1
    if (!(key in MED) || !(dkey in MED)) { printf "\n-c 1 select-only extended: %s not run\n", t; return "" }
    diffs = ""
    for (r in rounds) if (((r, key) in med) && ((r, dkey) in med)) diffs = diffs " " (med[r, key] - med[r, dkey])
    added = median(diffs)
    printf "\n-c 1 select-only extended (median latency, µs): direct %.0f, %s %.0f, added per statement %.0f µs (avg-based: %.0f µs)\n", median(MED[dkey]), t, median(MED[key]), added, (median(AVG[key]) - median(AVG[dkey])) * 1000
    return added
}
function target(what, v, op, lim, unit,    ok) {
    if (v == "" || v == "-" || v == "nan") { printf "  %-4s %-52s no value\n", "MISS", what; return }
    ok = (op == "<=") ? (v + 0 <= lim) : (v + 0 >= lim)
    printf "  %-4s %-52s %8.2f%s (target %s %s%s)\n", ok ? "PASS" : "MISS", what, v, unit, op, lim, unit
}
' "$RESULTS"
if [[ -z $SKIP_JG ]]; then
    echo
    echo "jitgate RSS after the run: $(rss_kib "$JG_PID") KiB; warnings/errors in its log: $(grep -ciE 'warn|error' "$TMP/jitgate.log" || true)"
    # Both parsers run on a cache miss only; a hit (exact text or shape) runs neither.
    curl -s --max-time 5 "http://127.0.0.1:$API_PORT/metrics" | awk '
        $1 == "jitgate_classification_cache_hits_total" {h = $2}
        $1 == "jitgate_classification_cache_misses_total" {m = $2}
        END {printf "jitgate classification cache over the whole run: %d hits, %d misses (%.4f%% of statements ran the two parsers)\n", h, m, (h + m) ? 100 * m / (h + m) : 0}'
fi
