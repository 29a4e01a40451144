# Throwaway PostgreSQL and Redis on 127.0.0.1, in a temporary folder, for scripts/test-all and
# scripts/run-production. Source it, then:
#
#   SERVICES_NAME=my-script          # prefix of the log lines
#   services_install [chromium]      # Debian packages when missing (and Chromium if asked)
#   trap services_stop EXIT          # stops both and removes the folder, keeping the exit code
#   trap 'exit 130' INT
#   trap 'exit 143' TERM
#   services_start                   # sets SERVICES_DIR, PG_URL, and exports REDIS_URL
#
# The cluster has one database, `inspector`, with trust authentication for `postgres`;
# Redis keeps nothing on disk.

services_log() { echo "${SERVICES_NAME:-services}: $*" >&2; }

services_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        services_log "need root to run: $*"
        return 1
    fi
}

# Debian puts the server binaries in /usr/lib/postgresql/<ver>/bin; take the
# newest there, falling back to PATH.
services_find_pg_bin() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r b; do
        if [[ -x "$b/initdb" && -x "$b/pg_ctl" ]]; then echo "$b"; fi
    done | tail -n 1 || true)"
    if [[ -z "$d" ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        d="$(dirname "$(command -v initdb)")"
    fi
    echo "$d"
}

# services_install [chromium]: install postgresql and redis-server (and chromium when asked)
# from Debian's packages if they are missing; sets PG_BIN. Fails when one is still missing.
services_install() {
    local want_chromium=0 missing=()
    [[ " $* " == *" chromium "* ]] && want_chromium=1
    [[ -n "$(services_find_pg_bin)" ]] || missing+=(postgresql)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    if (( want_chromium )) && [[ ! -x /usr/bin/chromium ]]; then missing+=(chromium); fi
    # npm with Chromium: tests/browser/test_mermaid.py installs the pinned Mermaid with it.
    if (( want_chromium )) && ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi
    if (( ${#missing[@]} )); then
        services_log "installing missing packages: ${missing[*]}"
        services_as_root apt-get update -q || return 1
        services_as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
    fi

    PG_BIN="$(services_find_pg_bin)"
    if [[ -z "$PG_BIN" ]]; then
        services_log "PostgreSQL server binaries (initdb, pg_ctl) not found after install"
        return 1
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        services_log "redis-server not found after install"
        return 1
    fi
    if (( want_chromium )) && [[ ! -x /usr/bin/chromium ]]; then
        services_log "/usr/bin/chromium not found after install"
        return 1
    fi
}

SERVICES_DIR=""
_services_pg_started=0
_services_pg_user=""

_services_as_pg() {
    # cd into the folder so the server user never needs access to the caller's cwd.
    if [[ -n "$_services_pg_user" ]]; then
        (cd "$SERVICES_DIR" && runuser -u "$_services_pg_user" -- "$@")
    else
        (cd "$SERVICES_DIR" && "$@")
    fi
}

# Start both; on failure, print the server's log and return 1 (services_stop cleans up).
services_start() {
    [[ -n "${PG_BIN:-}" ]] || PG_BIN="$(services_find_pg_bin)"
    SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/${SERVICES_NAME:-services}.XXXXXX")"
    local pgdata="$SERVICES_DIR/pgdata" pgsock="$SERVICES_DIR/pgsock"

    # PostgreSQL refuses to run as root: when root, run it as `postgres` (created
    # by the Debian package) or else `nobody`.
    if [[ $(id -u) -eq 0 ]]; then
        if id postgres >/dev/null 2>&1; then _services_pg_user=postgres; else _services_pg_user=nobody; fi
        chown "$_services_pg_user:" "$SERVICES_DIR"
        chmod 700 "$SERVICES_DIR"
    fi

    # Two distinct free loopback ports, held open together so they differ.
    read -r PG_PORT REDIS_PORT < <(python3 - <<'PY'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)

    services_log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') from $PG_BIN on 127.0.0.1:$PG_PORT${_services_pg_user:+ (as $_services_pg_user)}"
    _services_as_pg mkdir -p "$pgsock"
    if ! _services_as_pg "$PG_BIN/initdb" -D "$pgdata" --auth=trust -U postgres \
            --encoding=UTF8 --locale=C.UTF-8 >"$SERVICES_DIR/initdb.log" 2>&1; then
        cat "$SERVICES_DIR/initdb.log" >&2
        services_log "initdb failed"
        return 1
    fi
    cat >>"$pgdata/postgresql.conf" <<EOF

# ${SERVICES_NAME:-services}: throwaway cluster
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$pgsock'
EOF
    _services_pg_started=1
    if ! _services_as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -l "$SERVICES_DIR/postgres.log" -w -t 60 \
            start >/dev/null; then
        cat "$SERVICES_DIR/postgres.log" >&2 || true
        services_log "PostgreSQL failed to start"
        return 1
    fi
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt \
        -c 'CREATE DATABASE inspector' >/dev/null || return 1

    services_log "Redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//') on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$SERVICES_DIR" --daemonize yes --pidfile "$SERVICES_DIR/redis.pid" \
        --logfile "$SERVICES_DIR/redis.log"
    local redis_ok=0
    for _ in $(seq 100); do
        if [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; then
            redis_ok=1
            break
        fi
        sleep 0.1
    done
    if (( ! redis_ok )); then
        cat "$SERVICES_DIR/redis.log" >&2 || true
        services_log "Redis failed to start"
        return 1
    fi

    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/inspector"
}

# Stop both servers and remove the folder; keeps the exit status it was called with, so it
# serves as an EXIT trap.
services_stop() {
    local rc=$?
    set +e
    [[ -n "$SERVICES_DIR" ]] || return "$rc"
    if (( _services_pg_started )); then
        _services_as_pg "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pgdata" -m fast -t 30 stop \
            >/dev/null 2>&1 \
            || _services_as_pg "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pgdata" -m immediate stop \
                >/dev/null 2>&1
        _services_pg_started=0
    fi
    if [[ -f "$SERVICES_DIR/redis.pid" ]]; then
        local pid
        pid="$(cat "$SERVICES_DIR/redis.pid" 2>/dev/null)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null
        fi
    fi
    rm -rf "$SERVICES_DIR"
    SERVICES_DIR=""
    return "$rc"
}
