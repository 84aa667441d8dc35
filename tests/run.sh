#!/usr/bin/env bash
# The test command of jitgate: installs what a fresh Debian machine lacks (PostgreSQL 15 server
# and client, pgbench, pgbouncer, OpenSSH server and client, tmux, systemd-analyze, libclang
# for pg_query's bindgen, and Chromium with its WebDriver plus a venv with Selenium for the web
# console's browser test), then runs
# rustfmt, clippy and every test against real servers. A missing tool is an error, never a
# skipped test.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

# --- system packages -------------------------------------------------------------------------
declare -A needs=(
    [/usr/lib/postgresql/15/bin/postgres]=postgresql-15
    [/usr/lib/postgresql/15/bin/initdb]=postgresql-15
    [/usr/lib/postgresql/15/bin/pgbench]=postgresql-15
    [/usr/bin/psql]=postgresql-client-15
    [/usr/sbin/sshd]=openssh-server
    [/usr/bin/ssh]=openssh-client
    [/usr/bin/tmux]=tmux
    [/usr/sbin/pgbouncer]=pgbouncer
    # systemd-analyze checks systemd/jitgate.service offline; nothing here boots systemd.
    [/usr/bin/systemd-analyze]=systemd
    # The bash oracle (tests/ssh_bash_oracle.rs): namespaces, dropping to nobody, tracing.
    [/usr/bin/strace]=strace
    # zstdcat: tests/ssh_exec_hostile.rs proves `zstdcat -o FILE` writes on the target.
    [/usr/bin/zstdcat]=zstd
    [/usr/bin/unshare]=util-linux
    [/usr/bin/setpriv]=util-linux
    # The web console's browser test (tests/console_browser.rs): headless Chromium through
    # Selenium, in a venv made below.
    [/usr/bin/chromium]=chromium
    [/usr/bin/chromedriver]=chromium-driver
    [/usr/bin/python3]=python3
)
missing=()
for path in "${!needs[@]}"; do
    if [[ ! -x "$path" ]]; then
        pkg="${needs[$path]}"
        [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
    fi
done
for tool in psql pgbench; do
    command -v "$tool" >/dev/null 2>&1 || missing+=(postgresql-client-15)
done
# pg_query (PostgreSQL's own parser, compiled from C) runs bindgen at build time, which loads
# libclang; libclang-dev ships the unversioned libclang.so under whichever LLVM is current.
have_libclang() {
    compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null \
        || compgen -G '/usr/lib/*-linux-gnu/libclang.so' >/dev/null
}
have_libclang || missing+=(libclang-dev)
# `python3 -m venv` needs ensurepip, which Debian ships in python3-venv.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

say "checking system packages"
if ((${#missing[@]})); then
    # Deduplicate.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}) and not root: run as root or install them"
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get"
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y "${missing[@]}"
else
    echo "all present: postgresql-15, postgresql-client-15, pgbench, pgbouncer, openssh-server, openssh-client, tmux, systemd, strace, util-linux, zstd, libclang-dev, chromium, chromium-driver, python3-venv"
fi

for path in "${!needs[@]}"; do
    [[ -x "$path" ]] || die "$path is still missing after installing ${needs[$path]}"
done
for tool in psql pgbench; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH"
done
have_libclang || die "libclang.so is still missing after installing libclang-dev"

python3 -c 'import ensurepip' >/dev/null 2>&1 || die "python3-venv is still missing after installing it"

# Selenium for tests/console_browser.rs, in a throwaway venv under the target dir; the test
# reads the interpreter from JITGATE_CONSOLE_PYTHON and fails (never skips) without it.
console_venv="${CARGO_TARGET_DIR:-target}/console-venv"
if ! "$console_venv/bin/python" -c 'import selenium' >/dev/null 2>&1; then
    say "creating $console_venv with selenium"
    rm -rf "$console_venv"
    python3 -m venv "$console_venv"
    "$console_venv/bin/pip" install --quiet 'selenium>=4.20,<5'
fi
JITGATE_CONSOLE_PYTHON="$(cd "$console_venv" && pwd)/bin/python"
export JITGATE_CONSOLE_PYTHON

# postgres refuses to run as root: the tests start their clusters as the `postgres` OS user.
if ! id postgres >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "OS user postgres is missing and we are not root"
    say "creating the postgres OS user"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# --- Rust toolchain pieces -------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo is not installed (install Rust first)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || die "rustfmt/clippy missing and no rustup to add them"
    say "adding rustfmt and clippy"
    rustup component add rustfmt clippy
fi

# --- checks and tests ------------------------------------------------------------------------
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# One clean build: incremental caches would only take disk a CI machine may not have.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

say "cargo fmt --check"
cargo fmt --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

say "cargo test --all-targets --no-fail-fast"
cargo test --all-targets --no-fail-fast

if [[ -f src/lib.rs ]]; then
    say "cargo test --doc"
    cargo test --doc
fi

say "all checks passed"
