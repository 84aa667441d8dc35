#!/usr/bin/env bash
# Quick start: bring jitgate up in front of a throwaway local PostgreSQL 15 and OpenSSH sshd,
# and print what to try. Runs as root on Debian (installs what is missing; creates an OS user
# `jgdemo` for the SSH target); Ctrl-C stops and removes everything.
#
#   bash proxy-config/demo.sh
#
# Ports (override with env): PG_PORT=5433 JITGATE_PG=6432 JITGATE_API=8080 SSHD_PORT=2200
# JITGATE_SSH=2222
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PG_PORT=${PG_PORT:-5433}
JITGATE_PG=${JITGATE_PG:-6432}
JITGATE_API=${JITGATE_API:-8080}
SSHD_PORT=${SSHD_PORT:-2200}
JITGATE_SSH=${JITGATE_SSH:-2222}
PGBIN=/usr/lib/postgresql/15/bin

need=()
[ -x "$PGBIN/postgres" ] || need+=(postgresql-15)
command -v psql >/dev/null || need+=(postgresql-client-15)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/bash postgres

echo "== building jitgate"
cargo build --quiet
JG="${CARGO_TARGET_DIR:-$ROOT/target}/debug/jitgate"

DIR=$(mktemp -d /tmp/jitgate-demo.XXXXXX)
chown postgres "$DIR"
cleanup() {
  set +e
  [ -n "${JG_PID:-}" ] && kill "$JG_PID" 2>/dev/null && wait "$JG_PID" 2>/dev/null
  [ -n "${SSHD_PID:-}" ] && kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/pg" stop -m fast >/dev/null 2>&1
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

echo "== starting PostgreSQL 15 on 127.0.0.1:$PG_PORT ($DIR/pg)"
runuser -u postgres -- "$PGBIN/initdb" -D "$DIR/pg" -U postgres --auth=trust >/dev/null
cat >> "$DIR/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DIR'
password_encryption = 'scram-sha-256'
CONF
printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' > "$DIR/pg/pg_hba.conf"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg.log" start -w >/dev/null
PSQL=(psql -X -q -h "$DIR" -p "$PG_PORT" -U postgres)
"${PSQL[@]}" -c "create role app login password 'app-secret'" -c "create database app owner app"
"${PSQL[@]}" -d app -c "set role app" -c "create table accounts(id int primary key, owner text, balance numeric)" \
  -c "insert into accounts select g, 'user' || g, g * 10 from generate_series(1, 100) g"
printf 'app-secret' > "$DIR/app-db.password"; chmod 600 "$DIR/app-db.password"

echo "== starting OpenSSH sshd on 127.0.0.1:$SSHD_PORT for OS user jgdemo (the SSH target)"
id jgdemo >/dev/null 2>&1 || useradd -m -s /bin/bash jgdemo
usermod -p '*' jgdemo   # no password, but not locked: key logins work without PAM
ssh-keygen -q -t ed25519 -N '' -C jitgate-to-web-1 -f "$DIR/web-1.key"   # only jitgate holds it
ssh-keygen -q -t ed25519 -N '' -C alice@laptop -f "$DIR/alice.key"       # alice's own key
ssh-keygen -q -t ed25519 -N '' -f "$DIR/sshd_host_key"
cp "$DIR/web-1.key.pub" "$DIR/authorized_keys"
# sshd reads authorized_keys as jgdemo: let it through the directory (not list it).
chmod 711 "$DIR"; chmod 644 "$DIR/authorized_keys"
cat > "$DIR/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $DIR/sshd_host_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
PrintMotd no
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$DIR/sshd_config" 2>"$DIR/sshd.log" &
SSHD_PID=$!

ALICE=$(printf 'alice' | "$JG" hash-password)
BOB_TOKEN=bob-token
BOB_SHA=$(printf '%s' "$BOB_TOKEN" | sha256sum | cut -d' ' -f1)
CAROL=$(printf 'carol' | "$JG" hash-password)
cat > "$DIR/jitgate.toml" <<CONF
[server]
postgres_listen = "127.0.0.1:$JITGATE_PG"
api_listen      = "127.0.0.1:$JITGATE_API"
ssh_listen      = "127.0.0.1:$JITGATE_SSH"
data_dir        = "$DIR/data"

[[users]]
name = "alice"
groups = ["dev"]
password = "$ALICE"
ssh_keys = ["$(cat "$DIR/alice.key.pub")"]

[[users]]
name = "bob"
groups = ["sre"]
api_token_sha256 = "$BOB_SHA"

[api]
auditors = ["user:bob"]   # bob reads the whole trail: sessions, replay, audit verify

[[users]]
name = "carol"
groups = ["dev"]
password = "$CAROL"

[[targets]]
name = "app-db"
kind = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "app"
user = "app"
password_file = "$DIR/app-db.password"
tls = "disable"

[[targets]]
name = "web-1"
kind = "ssh"
address = "127.0.0.1:$SSHD_PORT"
user = "jgdemo"
key_file = "$DIR/web-1.key"
host_key = "$(cut -d' ' -f1-2 "$DIR/sshd_host_key.pub")"

[[rules]]
name = "reads pass"
classes = ["read"]
action = "allow"

[[rules]]
name = "shells are recorded"
classes = ["shell"]
action = "allow"

[[rules]]
name = "everything else needs an SRE"
classes = ["write", "ddl", "privilege", "admin", "code", "unknown", "file_transfer", "port_forward"]
action = "review"
approvers = ["group:sre"]
hold_timeout = "5m"
max_grant = "30m"
CONF
"$JG" check-config --config "$DIR/jitgate.toml" >/dev/null

echo "== starting jitgate (log: $DIR/jitgate.log)"
"$JG" serve --config "$DIR/jitgate.toml" >"$DIR/jitgate.log" 2>&1 &
JG_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$JITGATE_API/healthz" >/dev/null 2>&1 && break
  kill -0 "$JG_PID" 2>/dev/null || { cat "$DIR/jitgate.log"; exit 1; }
  sleep 0.1
done

cat <<TXT

jitgate is up: Postgres on 127.0.0.1:$JITGATE_PG, SSH on 127.0.0.1:$JITGATE_SSH, control API on http://127.0.0.1:$JITGATE_API

Terminal 1 — alice, a developer (her password is "alice"; she never sees the database's):
  PGPASSWORD=alice psql "host=127.0.0.1 port=$JITGATE_PG user=alice dbname=app-db"
    select count(*) from accounts;             -- a read: passes at once
    delete from accounts where id = 1;         -- a write: held, psql shows the request id

Or over SSH (alice's own key; jitgate holds web-1's):
  SSH="ssh -i $DIR/alice.key -p $JITGATE_SSH -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    \$SSH web-1@127.0.0.1 uptime                 -- a read: runs at once
    \$SSH web-1@127.0.0.1 'rm -f /tmp/demo-file' -- a write: held, stderr shows the request id
    \$SSH -t web-1@127.0.0.1                     -- a shell: allowed and recorded

Terminal 2 — bob, an approver:
  export JITGATE_URL=http://127.0.0.1:$JITGATE_API JITGATE_TOKEN=$BOB_TOKEN
  $JG requests --state pending
  $JG approve <ID> --reason "ticket 42"        # alice's DELETE runs: DELETE 1
  $JG deny <ID> --reason "not in prod"         # or: alice gets ERROR 42501
  $JG approve <ID> --grant 10m                  # or: more writes like it pass for 10 minutes

Afterwards — what happened, from the tamper-evident audit trail:
  $JG sessions                                  # as bob (same JITGATE_URL/JITGATE_TOKEN)
  $JG replay <SESSION_ID>                       # statements, decisions, approver, results, timings
                                                # (an SSH shell plays back like a film; --speed 2)
  $JG audit verify                              # ok N events

Dry-run the policy:
  $JG classify --config $DIR/jitgate.toml --target app-db --user alice 'update accounts set balance = 0'

Ctrl-C stops jitgate and PostgreSQL and removes $DIR.
TXT
wait "$JG_PID"
