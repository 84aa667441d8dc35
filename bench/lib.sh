# shellcheck shell=bash
# Shared helpers for bench/pgbench.sh and bench/idle_sessions.sh.
# Sourced, not run. Everything started here is recorded and stopped by bench_cleanup,
# which the caller installs as its EXIT trap.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# Passwords of the throwaway set-up (nothing here outlives the run).
UPSTREAM_PW="bench-upstream-$$-$RANDOM"   # Postgres role `bench` (direct and pgbouncer use it)
CLIENT_PW="bench-client-$$-$RANDOM"       # jitgate user `bench` (what clients of jitgate send)

# libpq: no TLS round trip for any of the three; never ask for a password on a tty.
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10
unset PGSERVICE PGPASSFILE PGOPTIONS 2>/dev/null || true

TMP=""
PG_PORT="" BOUNCER_PORT="" JG_PORT="" API_PORT=""
PG_PID="" BOUNCER_PID="" JG_PID=""
EXTRA_PIDS=()   # other processes a script started (stopped first on exit)
JITGATE_BIN=${JITGATE_BIN:-}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# --- set-up and teardown ------------------------------------------------------------------

bench_tmp() {
    TMP=$(mktemp -d /tmp/jitgate-bench.XXXXXX)
    chmod 755 "$TMP"
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres: "$TMP"
    mkdir -p "$TMP/logs"
}

stop_pid() {  # stop_pid PID: TERM, wait up to 5 s (zombies count as gone), then KILL; reap it.
    local pid=$1 state
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
        [[ $state == gone || $state == Z ]] && break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local rc=$?
    set +e
    local p
    for p in "${EXTRA_PIDS[@]}"; do stop_pid "$p"; done
    [[ -n $JG_PID ]] && stop_pid "$JG_PID"
    [[ -n $BOUNCER_PID ]] && stop_pid "$BOUNCER_PID"
    if [[ -n $PG_PID && -d $TMP/pg ]]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/pg" -m immediate -w stop >/dev/null 2>&1
        stop_pid "$PG_PID"
    fi
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ $rc -ne 0 && -n ${BENCH_KEEP_TMP:-} ]]; then
            log "kept $TMP (BENCH_KEEP_TMP is set)"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}

# --- what the machine needs ---------------------------------------------------------------

APT_UPDATED=""
apt_install() {
    log "installing $* (apt-get)"
    if [[ -z $APT_UPDATED ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

ensure_deps() {  # ensure_deps [pgbouncer]
    [[ $(id -u) -eq 0 ]] || die "run as root (it starts Postgres as the postgres OS user and may apt-get install)"
    local want=()
    [[ -x $PGBIN/initdb && -x $PGBIN/postgres ]] || want+=(postgresql-15)
    command -v psql >/dev/null && command -v pgbench >/dev/null || want+=(postgresql-client-15)
    command -v curl >/dev/null || want+=(curl)
    if [[ ${1:-} == pgbouncer ]]; then command -v pgbouncer >/dev/null || want+=(pgbouncer); fi
    [[ ${#want[@]} -eq 0 ]] || apt_install "${want[@]}"
    [[ -x $PGBIN/initdb ]] || die "no $PGBIN/initdb after installing postgresql-15"
    id postgres >/dev/null 2>&1 || die "no postgres OS user"
}

# JITGATE_BIN set: use it. Otherwise cargo build --release in the repo.
build_jitgate() {
    if [[ -n $JITGATE_BIN ]]; then
        [[ -x $JITGATE_BIN ]] || die "JITGATE_BIN=$JITGATE_BIN is not an executable"
    else
        command -v cargo >/dev/null || die "cargo not found (install Rust, or set JITGATE_BIN)"
        log "cargo build --release (in $REPO_DIR)"
        (cd "$REPO_DIR" && cargo build --release --bin jitgate 2>&1 | tail -n 20 >&2; exit "${PIPESTATUS[0]}") \
            || die "cargo build --release failed"
        JITGATE_BIN=$REPO_DIR/target/release/jitgate
        [[ -x $JITGATE_BIN ]] || die "no $JITGATE_BIN after the build"
    fi
}

# free_port [PORT_TO_AVOID...]: a 127.0.0.1 port nobody listens on, below the kernel's
# ephemeral range (outgoing connections take ports from that range and could grab ours).
free_port() {
    local p avoid
    for _ in $(seq 1 500); do
        p=$((20000 + RANDOM % 12000))
        for avoid in "$@"; do [[ $p == "$avoid" ]] && continue 2; done
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

wait_port() {  # wait_port PORT PID WHAT LOGFILE
    local port=$1 pid=$2 what=$3 logf=$4
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        if [[ ! -e /proc/$pid ]] || [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]]; then
            tail -n 30 "$logf" >&2 2>/dev/null || true
            die "$what exited before listening on 127.0.0.1:$port (log above: $logf)"
        fi
        sleep 0.1
    done
    tail -n 30 "$logf" >&2 2>/dev/null || true
    die "$what not listening on 127.0.0.1:$port after 30 s"
}

# --- the three servers ---------------------------------------------------------------------

# start_pg MAX_CONNECTIONS: throwaway PG15 cluster as the postgres OS user; role and db `bench`.
# PG_DURABLE=1: fsync, synchronous_commit and full_page_writes on (what users run); otherwise
# durability is off so that the numbers show the proxies, not this machine's disk.
PG_DURABLE=${PG_DURABLE:-}
start_pg() {
    local maxconn=$1 durability
    PG_PORT=$(free_port)
    if [[ -n $PG_DURABLE ]]; then
        durability=$'# --- jitgate bench: durable, as users run it ---\nfsync = on\nsynchronous_commit = on\nfull_page_writes = on'
    else
        durability=$'# --- jitgate bench (throwaway cluster: durability off on purpose) ---\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off'
    fi
    log "initdb + start Postgres 15 on 127.0.0.1:$PG_PORT (max_connections=$maxconn, $([[ -n $PG_DURABLE ]] && echo durable || echo 'fsync off'))"
    printf '%s\n' "$UPSTREAM_PW" >"$TMP/superuser.pw"
    chown postgres: "$TMP/superuser.pw"; chmod 600 "$TMP/superuser.pw"
    runuser -u postgres -- "$PGBIN/initdb" -D "$TMP/pg" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --pwfile="$TMP/superuser.pw" -E UTF8 --locale=C.UTF-8 \
        >"$TMP/initdb.log" 2>&1 || { tail -n 20 "$TMP/initdb.log" >&2; die "initdb failed"; }
    cat >>"$TMP/pg/postgresql.conf" <<EOF

$durability
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$TMP'
max_connections = $maxconn
shared_buffers = 128MB
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
EOF
    cat >"$TMP/pg/pg_hba.conf" <<EOF
local all postgres trust
host  all all 127.0.0.1/32 scram-sha-256
EOF
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/postgres.log" -w -t 60 start \
        >/dev/null 2>&1 || { tail -n 20 "$TMP/postgres.log" >&2; die "Postgres did not start"; }
    PG_PID=$(head -n 1 "$TMP/pg/postmaster.pid")
    psql_admin -c "CREATE ROLE bench LOGIN PASSWORD '$UPSTREAM_PW'" >/dev/null
    psql_admin -c "CREATE DATABASE bench OWNER bench" >/dev/null
    printf '%s' "$UPSTREAM_PW" >"$TMP/bench.pw"
    chmod 600 "$TMP/bench.pw"
}

psql_admin() {  # superuser over the unix socket in $TMP
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h "$TMP" -p "$PG_PORT" -U postgres -d postgres "$@"
}

psql_direct() {  # role bench, over TCP with SCRAM
    PGPASSWORD=$UPSTREAM_PW psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U bench -d bench "$@"
}

# start_pgbouncer POOL_SIZE: Debian's pgbouncer, session mode, SCRAM to clients and to Postgres.
start_pgbouncer() {
    local pool=$1
    BOUNCER_PORT=$(free_port "$PG_PORT")
    log "start pgbouncer $(pgbouncer --version 2>/dev/null | head -n 1 | awk '{print $2}') on 127.0.0.1:$BOUNCER_PORT (session mode, pool $pool)"
    # Plain password in the auth_file: pgbouncer then does SCRAM with the client and with Postgres.
    printf '"bench" "%s"\n' "$UPSTREAM_PW" >"$TMP/userlist.txt"
    cat >"$TMP/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $TMP/userlist.txt
pool_mode = session
default_pool_size = $pool
max_client_conn = $((pool + 50))
max_db_connections = 0
server_tls_sslmode = disable
client_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
logfile = $TMP/pgbouncer.log
EOF
    chown postgres: "$TMP/userlist.txt" "$TMP/pgbouncer.ini"
    chmod 600 "$TMP/userlist.txt"
    # -u: drop root; no -d, so $! is pgbouncer itself (its CPU is what we read).
    pgbouncer -u postgres "$TMP/pgbouncer.ini" >>"$TMP/pgbouncer.stderr" 2>&1 &
    BOUNCER_PID=$!
    wait_port "$BOUNCER_PORT" "$BOUNCER_PID" pgbouncer "$TMP/pgbouncer.log"
}

# start_jitgate: jitgate in front of the cluster, rules allowing read and write.
start_jitgate() {  # start_jitgate [TAG] [EXTRA_TOML]: files $TMP/TAG.{toml,log}, data $TMP/TAG-data
    local tag=${1:-jitgate} extra=${2:-}
    JG_PORT=$(free_port "$PG_PORT" "${BOUNCER_PORT:-}" ${USED_PORTS:-})
    API_PORT=$(free_port "$PG_PORT" "${BOUNCER_PORT:-}" "$JG_PORT" ${USED_PORTS:-})
    USED_PORTS="${USED_PORTS:-} $JG_PORT $API_PORT"
    local verifier
    verifier=$(printf '%s' "$CLIENT_PW" | "$JITGATE_BIN" hash-password) || die "jitgate hash-password failed"
    verifier=$(printf '%s' "$verifier" | tr -d '\r\n')
    [[ $verifier == SCRAM-SHA-256* ]] || die "jitgate hash-password printed no SCRAM verifier: $verifier"
    cat >"$TMP/$tag.toml" <<EOF
[server]
postgres_listen = "127.0.0.1:$JG_PORT"
api_listen = "127.0.0.1:$API_PORT"
data_dir = "$TMP/$tag-data"

[[users]]
name = "bench"
password = "$verifier"

[[targets]]
name = "bench"
kind = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "bench"
user = "bench"
password_file = "$TMP/bench.pw"
tls = "disable"

[[rules]]
name = "reads pass"
classes = ["read"]
action = "allow"

[[rules]]
name = "bench writes pass"
classes = ["write"]
action = "allow"
$extra
EOF
    log "start jitgate on 127.0.0.1:$JG_PORT (API 127.0.0.1:$API_PORT): $JITGATE_BIN"
    "$JITGATE_BIN" serve --config "$TMP/$tag.toml" >"$TMP/$tag.log" 2>&1 &
    JG_PID=$!
    local code=000
    for _ in $(seq 1 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$API_PORT/healthz" 2>/dev/null) || true
        [[ $code == 200 ]] && break
        if [[ ! -e /proc/$JG_PID ]] || [[ $(awk '{print $3}' "/proc/$JG_PID/stat" 2>/dev/null) == Z ]]; then
            tail -n 30 "$TMP/$tag.log" >&2 || true
            die "jitgate exited before /healthz answered 200 (its log is above)"
        fi
        sleep 0.1
    done
    if [[ $code != 200 ]]; then
        tail -n 30 "$TMP/$tag.log" >&2 || true
        die "jitgate: GET /healthz = $code after 30 s (its log is above)"
    fi
    # One statement through it, so a broken proxy fails here and not 20 runs later.
    local out
    out=$(PGPASSWORD=$CLIENT_PW psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$JG_PORT" -U bench \
        -d bench -c "SELECT 40 + 2" 2>&1) || {
        tail -n 20 "$TMP/$tag.log" >&2 || true
        die "psql through jitgate failed: $out"
    }
    [[ $out == 42 ]] || die "psql through jitgate: SELECT 40 + 2 gave '$out'"
}

# --- measuring -----------------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)  # used by the scripts that source this
export CLK_TCK

# cpu_ticks PID: utime + stime (fields 14 and 15 of /proc/PID/stat) of the whole process, all
# threads. The command name (field 2) may hold spaces, so count fields after its ')'.
cpu_ticks() {
    local s
    s=$(cat "/proc/$1/stat") || die "process $1 is gone"
    s=${s##*) }
    awk '{print $12 + $13}' <<<"$s"
}

# median of the latency column (3rd field, µs) of pgbench's per-transaction logs
log_median_us() {
    cat "$@" | awk '$3 ~ /^[0-9]+$/ {print $3}' | sort -n | awk '
        {a[NR] = $1}
        END { if (NR == 0) { print "nan"; exit }
              if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# approvals_setup: sets `verifier` (alice's SCRAM verifier for $CLIENT_PW) and `token_sha` (the
# SHA-256 of bob's $API_TOKEN) for approvals_policy.
approvals_setup() {
    verifier=$(printf '%s' "$CLIENT_PW" | "$JITGATE_BIN" hash-password) || die "jitgate hash-password failed"
    verifier=$(printf '%s' "$verifier" | tr -d '\r\n')
    [[ $verifier == SCRAM-SHA-256* ]] || die "jitgate hash-password printed no SCRAM verifier: $verifier"
    token_sha=$(printf '%s' "$API_TOKEN" | sha256sum | awk '{print $1}')
}

# approvals_policy: the users, target and rules of the approval benches (TOML on stdout):
# alice (dev) logs in with a password, bob (sre) approves with a token; reads pass, writes wait
# for one approver of group sre.
approvals_policy() {
    cat <<EOF
[[users]]
name = "alice"
groups = ["dev"]
password = "$verifier"

[[users]]
name = "bob"
groups = ["sre"]
api_token_sha256 = "$token_sha"

[[targets]]
name = "bench"
kind = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "bench"
user = "bench"
password_file = "$TMP/bench.pw"
tls = "disable"

[[rules]]
name = "reads pass"
classes = ["read"]
action = "allow"

[[rules]]
name = "writes need one SRE"
classes = ["write"]
action = "review"
approvers = ["group:sre"]
approvals_required = 1
hold_timeout = "10m"
EOF
}
