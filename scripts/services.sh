#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are up, for
# the integration tests and for running nodes locally (`make services`), and that
# the tools some tests run are installed: Node.js and npm (the phoenix.js
# end-to-end test), promtool (the alert rules' tests, tests/deploy/, and the
# metrics checks on live scrapes), and Chromium with chromedriver (the web client's
# browser test, tests/web/test_browser.py).
#
# Idempotent, and never stops anything: for each service,
#   1. reachable already  -> say so;
#   2. installed, stopped -> start it (the commands this machine's services use);
#   3. not installed      -> as root with apt-get, install it from Debian and start it;
# then wait until it answers, and exit non-zero with a clear message if it does
# not within WAIT_SECONDS. For PostgreSQL it then checks that user postgres can
# connect over TCP without a password and that database `test` exists (it
# creates the database; it changes pg_hba.conf only for a cluster it installed
# itself, or when WHISPR_SERVICES_FIX_AUTH=1).
#
# Settings (environment): PG_HOST, PG_PORT, PG_DATABASE, REDIS_HOST, REDIS_PORT,
# WAIT_SECONDS (default 30).
set -euo pipefail

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_DATABASE=${PG_DATABASE:-test}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
WAIT_SECONDS=${WAIT_SECONDS:-30}
FIX_AUTH=${WHISPR_SERVICES_FIX_AUTH:-0}

PYTHON=$(command -v python3 || command -v python || true)
APT_UPDATED=0
INSTALLED_PG=0
REDIS_LOG=/var/log/redis/ci.log

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# --- reachability --------------------------------------------------------------

# Ask a PostgreSQL server for SSL: any PostgreSQL answers with one byte, S or N.
# Used only when pg_isready is not installed.
pg_probe_python() {
    [ -n "$PYTHON" ] || return 1
    "$PYTHON" - "$PG_HOST" "$PG_PORT" <<'EOF'
import socket, struct, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:
        s.sendall(struct.pack("!ii", 8, 80877103))
        sys.exit(0 if s.recv(1) in (b"S", b"N") else 1)
except OSError:
    sys.exit(1)
EOF
}

# Send a Redis PING; used only when redis-cli is not installed.
redis_probe_python() {
    [ -n "$PYTHON" ] || return 1
    "$PYTHON" - "$REDIS_HOST" "$REDIS_PORT" <<'EOF'
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
EOF
}

pg_up() {
    if have pg_isready; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    else
        pg_probe_python
    fi
}

redis_up() {
    if have redis-cli; then
        [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
    else
        redis_probe_python
    fi
}

# wait_for NAME CHECK: poll CHECK once a second for up to WAIT_SECONDS.
wait_for() {
    local name=$1 check=$2 waited=0
    until "$check"; do
        if [ "$waited" -ge "$WAIT_SECONDS" ]; then
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "$name is up (after ${waited}s)"
}

# --- installing ----------------------------------------------------------------

apt_install() {
    if ! is_root || ! have apt-get; then
        return 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL ------------------------------------------------------------------

pg_version() {
    # The newest cluster version under /etc/postgresql (Debian's layout).
    [ -d /etc/postgresql ] || return 1
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    [ -n "$version" ] || return 1
    printf '%s\n' "$version"
}

pg_start() {
    local version
    version=$(pg_version) || return 1
    have pg_ctlcluster || return 1
    say "starting PostgreSQL $version (pg_ctlcluster $version main start)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
}

pg_psql() {
    # psql as user postgres over TCP, no password, no prompt (CI has no stdin).
    PGCONNECT_TIMEOUT=5 psql -X -w -q -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@" </dev/null
}

pg_psql_local() {
    # psql as the postgres OS user over the Unix socket (peer auth), as root.
    su postgres -c "psql -X -w -q $(printf '%q ' "$@")" </dev/null
}

pg_allow_local_trust() {
    local version hba
    version=$(pg_version) || return 1
    hba=/etc/postgresql/$version/main/pg_hba.conf
    [ -f "$hba" ] || return 1
    if grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        return 0
    fi
    say "allowing passwordless TCP connections from 127.0.0.1 and ::1 in $hba"
    local tmp
    tmp=$(mktemp)
    {
        echo "# Added by whispr scripts/services.sh: local development and tests."
        echo "host    all    all    127.0.0.1/32    trust"
        echo "host    all    all    ::1/128         trust"
        cat "$hba"
    } >"$tmp"
    cat "$tmp" >"$hba"
    rm -f "$tmp"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
}

pg_ensure_database() {
    if ! have psql; then
        say "psql is not installed: not checking that database '$PG_DATABASE' exists"
        return 0
    fi
    if ! pg_psql -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
        if is_root && { [ "$INSTALLED_PG" -eq 1 ] || [ "$FIX_AUTH" = 1 ]; }; then
            pg_allow_local_trust || die "could not enable trust authentication for 127.0.0.1"
            sleep 1
        fi
        pg_psql -d postgres -Atc 'SELECT 1' >/dev/null 2>&1 || die \
            "PostgreSQL at $PG_HOST:$PG_PORT is up but user postgres cannot log in without a" \
            "password. Allow it in pg_hba.conf (host all all 127.0.0.1/32 trust) or rerun as" \
            "root with WHISPR_SERVICES_FIX_AUTH=1."
    fi
    if [ "$(pg_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" = "1" ]; then
        say "PostgreSQL database '$PG_DATABASE' exists"
        return 0
    fi
    say "creating PostgreSQL database '$PG_DATABASE'"
    if ! pg_psql -d postgres -c "CREATE DATABASE \"$PG_DATABASE\"" 2>/dev/null; then
        is_root || die "could not create database '$PG_DATABASE'"
        pg_psql_local -d postgres -c "CREATE DATABASE \"$PG_DATABASE\"" ||
            die "could not create database '$PG_DATABASE'"
    fi
}

ensure_postgres() {
    if pg_up; then
        say "PostgreSQL is already up on $PG_HOST:$PG_PORT"
    else
        if ! pg_version >/dev/null || ! have pg_ctlcluster; then
            say "PostgreSQL is not installed"
            apt_install postgresql || die \
                "PostgreSQL is neither reachable on $PG_HOST:$PG_PORT nor installed, and this" \
                "script can install it only as root with apt-get. Install PostgreSQL, or point" \
                "WHISPR_TEST_DATABASE_URL at a server."
            INSTALLED_PG=1
        fi
        pg_start || die "could not start PostgreSQL (no cluster under /etc/postgresql?)"
        wait_for PostgreSQL pg_up ||
            die "PostgreSQL did not answer on $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s" \
                "(see /var/log/postgresql/)"
    fi
    pg_ensure_database
}

# --- Redis -------------------------------------------------------------------------

redis_start() {
    have redis-server || return 1
    local dir=/var/lib/redis logdir=/var/log/redis
    if ! mkdir -p "$dir" "$logdir" 2>/dev/null || [ ! -w "$dir" ] || [ ! -w "$logdir" ]; then
        # Not root: keep Redis's files in a private temporary directory instead.
        dir=${TMPDIR:-/tmp}/whispr-redis-$(id -u)
        logdir=$dir
        mkdir -p "$dir"
    fi
    REDIS_LOG=$logdir/ci.log
    say "starting Redis on $REDIS_HOST:$REDIS_PORT (in memory only: --save '' --appendonly no)"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$dir" --logfile "$REDIS_LOG"
}

ensure_redis() {
    if redis_up; then
        say "Redis is already up on $REDIS_HOST:$REDIS_PORT"
        return 0
    fi
    if ! have redis-server; then
        say "Redis is not installed"
        apt_install redis-server || die \
            "Redis is neither reachable on $REDIS_HOST:$REDIS_PORT nor installed, and this" \
            "script can install it only as root with apt-get. Install redis-server, or point" \
            "WHISPR_TEST_REDIS_URL at a server."
    fi
    redis_start || die "could not start redis-server (see $REDIS_LOG)"
    wait_for Redis redis_up ||
        die "Redis did not answer on $REDIS_HOST:$REDIS_PORT within ${WAIT_SECONDS}s" \
            "(see $REDIS_LOG)"
}

# --- Node.js (for the phoenix.js end-to-end test) -----------------------------------

ensure_node() {
    if have node && have npm; then
        say "Node.js $(node --version) and npm are installed"
        return 0
    fi
    say "Node.js or npm is missing (the phoenix.js end-to-end test needs them)"
    apt_install nodejs npm || die \
        "Node.js and npm are not installed, and this script can install them only as root" \
        "with apt-get. Install nodejs and npm."
}

# --- promtool (for the alert rules' tests) -------------------------------------------

ensure_promtool() {
    if have promtool; then
        say "promtool is installed ($(promtool --version 2>&1 | head -n 1))"
        return 0
    fi
    # Debian's prometheus package ships /usr/bin/promtool. Its server is not wanted here:
    # --no-install-recommends keeps the exporters out, and where policy-rc.d forbids
    # starting services (containers, CI) the package installs without starting one.
    say "promtool is missing (the alert rules' tests and the metrics checks need it)"
    apt_install --no-install-recommends prometheus || die \
        "promtool is not installed, and this script can install it only as root with" \
        "apt-get. Install Debian's prometheus package (it ships /usr/bin/promtool)."
    have promtool || die "the prometheus package installed no promtool"
}

# --- Chromium and its driver (for the web client's browser test) ----------------------

ensure_chromium() {
    if have chromium && have chromedriver; then
        say "Chromium and chromedriver are installed ($(chromedriver --version 2>/dev/null | cut -d' ' -f1-2))"
        return 0
    fi
    say "Chromium or chromedriver is missing (the web client's browser test needs them)"
    apt_install chromium chromium-driver || die \
        "Chromium is not installed, and this script can install it only as root with" \
        "apt-get. Install Debian's chromium and chromium-driver packages."
}

ensure_postgres
ensure_redis
ensure_node
ensure_promtool
ensure_chromium
say "all services are up"
