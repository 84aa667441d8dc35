#!/usr/bin/env bash
# jitgate SSH benchmark: OpenSSH straight to a throwaway sshd versus the same through jitgate,
# alternating the two in one run so machine noise hits them alike. See bench/README.md.
#
#   bash bench/ssh.sh [--quick] [--rounds N] [--mb MB] [--setups N]
#
# Per round and path it measures
#   bulk:  MB megabytes (default 500) of zeros through a remote `cat` into /dev/null
#          (`head -c … | ssh HOST 'cat >/dev/null'`), as MB/s;
#   setup: the median wall time of N (default 20) `ssh HOST true`.
# and prints the medians over the rounds with jitgate/direct ratios
# (targets: bulk >= 0.85x direct, setup <= 2x direct).
#
# env: ROUNDS (default 3), MB, SETUPS, JITGATE_BIN (a prebuilt binary; otherwise
#      `cargo build --release`), BENCH_KEEP_TMP=1 (keep the temp dir when the run fails).
# Runs as root: it creates the OS user `jgbench` for the target sshd.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
MB=${MB:-500}
SETUPS=${SETUPS:-20}
TARGET_USER=jgbench

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) ROUNDS=1 MB=100 SETUPS=5 ;;
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
        --mb) MB=${2:?--mb needs a number}; shift ;;
        --setups) SETUPS=${2:?--setups needs a number}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
for v in ROUNDS MB SETUPS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || die "$v must be a whole number >= 1"
done
[[ $(id -u) -eq 0 ]] || die "run as root (it starts sshd and creates the user $TARGET_USER)"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

[[ -x /usr/sbin/sshd ]] || apt_install openssh-server
command -v ssh >/dev/null || apt_install openssh-client
command -v curl >/dev/null || apt_install curl
build_jitgate
TMP=$(mktemp -d /tmp/jitgate-sshbench.XXXXXX)
chmod 755 "$TMP"   # sshd reads authorized_keys as the target user
mkdir -p "$TMP/logs" /run/sshd

id "$TARGET_USER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$TARGET_USER"
usermod -p '*' "$TARGET_USER"

for k in host client proxy_to_target; do
    ssh-keygen -q -t ed25519 -N '' -C "jitgate-bench-$k" -f "$TMP/$k"
done
cat "$TMP/client.pub" "$TMP/proxy_to_target.pub" >"$TMP/authorized_keys"

SSHD_PORT=$(free_port)
cat >"$TMP/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $TMP/host
PidFile $TMP/sshd.pid
AuthorizedKeysFile $TMP/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
MaxStartups 200
LogLevel ERROR
EOF
log "start sshd on 127.0.0.1:$SSHD_PORT"
/usr/sbin/sshd -D -e -f "$TMP/sshd_config" -p "$SSHD_PORT" >"$TMP/logs/sshd.log" 2>&1 &
EXTRA_PIDS+=($!)
wait_port "$SSHD_PORT" "${EXTRA_PIDS[-1]}" sshd "$TMP/logs/sshd.log"

JG_PORT=$(free_port "$SSHD_PORT")
API_PORT=$(free_port "$SSHD_PORT" "$JG_PORT")
cat >"$TMP/jitgate.toml" <<EOF
[server]
ssh_listen = "127.0.0.1:$JG_PORT"
api_listen = "127.0.0.1:$API_PORT"
data_dir = "$TMP/jitgate-data"
ssh_host_key = "$TMP/jitgate_host_key"

[[users]]
name = "bench"
ssh_keys = ["$(cat "$TMP/client.pub")"]

[[targets]]
name = "bench"
kind = "ssh"
address = "127.0.0.1:$SSHD_PORT"
user = "$TARGET_USER"
key_file = "$TMP/proxy_to_target"
host_key = "$(cut -d' ' -f1,2 "$TMP/host.pub")"

[[rules]]
name = "reads pass"
classes = ["read", "write"]
action = "allow"
EOF
log "start jitgate on 127.0.0.1:$JG_PORT: $JITGATE_BIN"
"$JITGATE_BIN" serve --config "$TMP/jitgate.toml" >"$TMP/logs/jitgate.log" 2>&1 &
JG_PID=$!
wait_port "$JG_PORT" "$JG_PID" jitgate "$TMP/logs/jitgate.log"

SSH_OPTS=(-i "$TMP/client" -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
dest() {  # dest PATH -> ssh arguments for the host
    case $1 in
        direct) echo "-p $SSHD_PORT $TARGET_USER@127.0.0.1" ;;
        jitgate) echo "-p $JG_PORT bench@127.0.0.1" ;;
    esac
}

# Sanity: both paths answer and hash the same bytes the same way.
for p in direct jitgate; do
    # shellcheck disable=SC2046
    out=$(head -c 1000000 /dev/zero | ssh "${SSH_OPTS[@]}" $(dest "$p") sha256sum) || die "$p: ssh failed"
    [[ $out == 2c0f* || $out == *" -" ]] || die "$p: unexpected output: $out"
done

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

bulk() {  # bulk PATH -> MB/s
    local t0 t1
    t0=$(now)
    # shellcheck disable=SC2046
    head -c "${MB}M" /dev/zero | ssh "${SSH_OPTS[@]}" $(dest "$1") 'cat >/dev/null' || die "$1: bulk failed"
    t1=$(now)
    awk -v mb="$MB" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", mb / (b - a)}'
}

setup() {  # setup PATH -> median seconds per `ssh host true`
    local i t0 t1
    for i in $(seq 1 "$SETUPS"); do
        t0=$(now)
        # shellcheck disable=SC2046
        ssh "${SSH_OPTS[@]}" $(dest "$1") true </dev/null || die "$1: ssh true failed"
        t1=$(now)
        awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
    done | median
}

declare -A BULK SETUP
for r in $(seq 1 "$ROUNDS"); do
    order=(direct jitgate)
    ((r % 2 == 0)) && order=(jitgate direct)
    for p in "${order[@]}"; do
        b=$(bulk "$p"); s=$(setup "$p")
        BULK[$p]+="$b "; SETUP[$p]+="$s "
        log "round $r $p: bulk $b MB/s, setup $(awk -v s="$s" 'BEGIN {printf "%.1f", s * 1000}') ms"
    done
done

med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
bd=$(med "${BULK[direct]}"); bj=$(med "${BULK[jitgate]}")
sd=$(med "${SETUP[direct]}"); sj=$(med "${SETUP[jitgate]}")
echo
echo "ssh bench: $ROUNDS round(s), bulk ${MB} MB through cat, setup = median of $SETUPS 'ssh host true'"
printf '%-10s %12s %14s\n' path "bulk MB/s" "setup ms"
printf '%-10s %12.1f %14.1f\n' direct "$bd" "$(awk -v s="$sd" 'BEGIN {print s * 1000}')"
printf '%-10s %12.1f %14.1f\n' jitgate "$bj" "$(awk -v s="$sj" 'BEGIN {print s * 1000}')"
awk -v bd="$bd" -v bj="$bj" -v sd="$sd" -v sj="$sj" 'BEGIN {
    printf "ratios: bulk %.2fx direct (target >= 0.85), setup %.2fx direct (target <= 2)\n", bj / bd, sj / sd
}'
