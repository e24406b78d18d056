#!/usr/bin/env bash
# The demo: a real supervisord with programs in every interesting state, watched by
# supervisord-receiver, which prints what it exports (and sends it to an OTLP endpoint if
# OTEL_EXPORTER_OTLP_ENDPOINT is set).
#
#   bash examples/demo/run.sh                      # runs until Ctrl-C
#   DEMO_DURATION=20 bash examples/demo/run.sh     # stops by itself after 20 s
#   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 bash examples/demo/run.sh
#
# Needs python3 (with venv) and cargo. supervisord comes from PATH, or is installed from PyPI
# into target/supervisor-venv (the same venv, by the same routine, as the test suite).
#
# Environment:
#   DEMO_DURATION                 stop after this many seconds instead of waiting for Ctrl-C
#   OTEL_EXPORTER_OTLP_ENDPOINT   also export over OTLP to this endpoint
#   OTEL_EXPORTER_OTLP_PROTOCOL   grpc | http/protobuf (default) | http/json
#   DEMO_RECEIVER_BIN             use this receiver binary instead of `cargo build --release`
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROGRAMS="$REPO/examples/demo/programs"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac

if [[ -t 2 ]]; then
    say() { printf '\033[1m[demo]\033[0m %s\n' "$*" >&2; }
else
    say() { printf '[demo] %s\n' "$*" >&2; }
fi
die() { say "error: $*"; exit 1; }

if [[ -n "${DEMO_DURATION:-}" && ! "$DEMO_DURATION" =~ ^[0-9]+$ ]]; then
    die "DEMO_DURATION must be a whole number of seconds, got '$DEMO_DURATION'"
fi
command -v python3 >/dev/null || die "python3 is needed (for supervisord and the sample web server)"

# --- supervisord: from PATH, or the venv under target/ the tests use ---------------------------
# The repository's one provisioning routine (tests/testkit/provision.rs, also the tests' and the
# examples'), run as examples/provision.rs. That needs no crate, so rustc builds it in a second,
# rather than `cargo run --example provision`, which would first build every dependency of the
# examples.
PROVISION_SRC=("$REPO/examples/provision.rs" "$REPO/tests/testkit/provision.rs")
PROVISION="$TARGET_DIR/supervisor-provision"
stale=0
[[ -x "$PROVISION" ]] || stale=1
for src in "${PROVISION_SRC[@]}"; do
    if [[ "$src" -nt "$PROVISION" ]]; then stale=1; fi
done
if ((stale)); then
    command -v "${RUSTC:-rustc}" >/dev/null || die "rustc is needed (it comes with cargo)"
    mkdir -p "$TARGET_DIR"
    "${RUSTC:-rustc}" --edition 2021 --crate-name provision -o "$PROVISION.tmp-$$" "${PROVISION_SRC[0]}" \
        || { rm -f "$PROVISION.tmp-$$"; die "cannot build ${PROVISION_SRC[0]}"; }
    mv -f "$PROVISION.tmp-$$" "$PROVISION"
fi
TOOLS=$("$PROVISION" "$TARGET_DIR") || die "cannot provide supervisord (see above)"
{
    IFS=$'\t' read -r -a SUPERVISORD
    IFS=$'\t' read -r -a SUPERVISORCTL
} <<<"$TOOLS"
((${#SUPERVISORD[@]} && ${#SUPERVISORCTL[@]})) || die "unexpected output from $PROVISION: $TOOLS"

# --- the receiver ------------------------------------------------------------------------
if [[ -n "${DEMO_RECEIVER_BIN:-}" ]]; then
    RECEIVER=$DEMO_RECEIVER_BIN
else
    say "building supervisord-receiver (cargo build --release)"
    (cd "$REPO" && cargo build --release --quiet --bin supervisord-receiver)
    RECEIVER="$TARGET_DIR/release/supervisord-receiver"
fi
[[ -x "$RECEIVER" ]] || die "no receiver binary at $RECEIVER"

# --- everything else lives in one temp dir, removed on exit --------------------------------
DEMO_DIR=$(mktemp -d /tmp/supervisord-demo.XXXXXX)
SUPERVISORD_PID=""
RECEIVER_PID=""

wait_gone() { # pid, tenths of a second
    local pid=$1 tries=$2
    while kill -0 "$pid" 2>/dev/null && ((tries-- > 0)); do sleep 0.1; done
    ! kill -0 "$pid" 2>/dev/null
}

# shellcheck disable=SC2317  # called from the EXIT trap
stop_pid() { # pid, seconds to wait after SIGTERM before SIGKILL
    local pid=$1
    [[ -n "$pid" ]] || return 0
    # After Ctrl-C the terminal has already sent SIGINT to every process of the demo: give it
    # a moment to finish on its own before asking again.
    if ! { ((INTERRUPTED)) && wait_gone "$pid" 20; }; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" $(($2 * 10)) || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    trap - EXIT INT TERM
    stop_pid "$RECEIVER_PID" 10
    # supervisord stops its programs (and their process groups) before it exits.
    stop_pid "$SUPERVISORD_PID" 15
    rm -rf "$DEMO_DIR"
    say "stopped; removed $DEMO_DIR"
}
trap cleanup EXIT
INTERRUPTED=0
trap 'INTERRUPTED=1; exit 130' INT
trap 'exit 143' TERM

free_port() { # prefers 9001, supervisord's usual port
    python3 - <<'PY'
import socket
for port in (9001, 0):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(s.getsockname()[1])
    break
PY
}

PORT=$(free_port)
WEB_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
USERNAME=demo
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
SOCKET="$DEMO_DIR/supervisor.sock"
CONF="$DEMO_DIR/supervisord.conf"

cat >"$CONF" <<EOF
; Written by examples/demo/run.sh.
[unix_http_server]
file=$SOCKET
chmod=0700
username=$USERNAME
password=$PASSWORD

[inet_http_server]
port=127.0.0.1:$PORT
username=$USERNAME
password=$PASSWORD

[supervisord]
nodaemon=true
logfile=$DEMO_DIR/supervisord.log
pidfile=$DEMO_DIR/supervisord.pid
childlogdir=$DEMO_DIR
identifier=demo-supervisor

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$SOCKET
username=$USERNAME
password=$PASSWORD

; RUNNING
[program:web]
command=/bin/sh $PROGRAMS/web.sh
environment=DEMO_WEB_PORT="$WEB_PORT"
startsecs=1
stopasgroup=true
killasgroup=true
redirect_stderr=true

[program:worker-1]
command=/bin/sh $PROGRAMS/worker.sh
startsecs=1
stopasgroup=true
killasgroup=true
redirect_stderr=true

[program:worker-2]
command=/bin/sh $PROGRAMS/worker.sh
startsecs=1
stopasgroup=true
killasgroup=true
redirect_stderr=true

[group:workers]
programs=worker-1,worker-2

; EXITED: a one-shot job
[program:migrate]
command=/bin/sh $PROGRAMS/migrate.sh
startsecs=0
autorestart=false
stopasgroup=true
killasgroup=true
redirect_stderr=true

; FATAL: fails at once, retried once, then given up on. (supervisord notices an exit on its
; one-second tick: a startsecs well above that keeps a quick failure from counting as a start.)
[program:broken]
command=/bin/sh $PROGRAMS/broken.sh
startsecs=5
startretries=1
redirect_stderr=true

; BACKOFF: crash-looping, retried with a growing delay
[program:flapping]
command=/bin/sh $PROGRAMS/flapping.sh
startsecs=5
startretries=1000
stopasgroup=true
killasgroup=true
redirect_stderr=true

; STOPPED: started by hand only
[program:nightly-report]
command=/bin/sh $PROGRAMS/report.sh
autostart=false
stopasgroup=true
killasgroup=true
redirect_stderr=true
EOF

say "starting supervisord (TCP 127.0.0.1:$PORT and $SOCKET, user '$USERNAME')"
"${SUPERVISORD[@]}" -c "$CONF" -n >"$DEMO_DIR/supervisord.out" 2>&1 &
SUPERVISORD_PID=$!

ctl() { "${SUPERVISORCTL[@]}" -c "$CONF" "$@"; }

# Wait until the one-shot job has finished, so the first export already shows every state.
for _ in $(seq 1 100); do
    if ! kill -0 "$SUPERVISORD_PID" 2>/dev/null; then
        cat "$DEMO_DIR/supervisord.out" >&2
        die "supervisord exited"
    fi
    states=$(ctl status 2>/dev/null || true)
    if grep -Eq '^migrate +EXITED' <<<"$states" && grep -Eq '^broken +FATAL' <<<"$states"; then
        break
    fi
    sleep 0.2
done
ctl status >&2 || true

CONFIG="$DEMO_DIR/receiver.yaml"
{
    cat <<EOF
# Written by examples/demo/run.sh. The same supervisord, watched through both of its servers.
# The password comes from the environment, so this file holds no secret.
collection_interval: 5s
initial_delay: 0s
timeout: 5s
targets:
  - name: demo-tcp
    endpoint: http://127.0.0.1:$PORT
    username: $USERNAME
    password: \${env:DEMO_SUPERVISOR_PASSWORD}
    resource_attributes:
      deployment.environment: demo
  - name: demo-socket
    endpoint: unix://$SOCKET
    username: $USERNAME
    password: \${env:DEMO_SUPERVISOR_PASSWORD}
    include:
      groups: [workers]
    output: true          # what the workers print, one log record per line
exporters:
  debug:
    verbosity: detailed
EOF
    if [[ -n "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" ]]; then
        cat <<EOF
  otlp:
    protocol: ${OTEL_EXPORTER_OTLP_PROTOCOL:-http/protobuf}
    endpoint: "$OTEL_EXPORTER_OTLP_ENDPOINT"
EOF
    fi
} >"$CONFIG"

if [[ -n "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" ]]; then
    say "exporting to $OTEL_EXPORTER_OTLP_ENDPOINT (${OTEL_EXPORTER_OTLP_PROTOCOL:-http/protobuf}) and to stdout"
else
    say "exporting to stdout (set OTEL_EXPORTER_OTLP_ENDPOINT to send OTLP too)"
fi
say "try in another terminal: ${SUPERVISORCTL[*]} -c $CONF stop web"
say "temp dir: $DEMO_DIR; supervisord pid: $SUPERVISORD_PID"
if [[ -n "${DEMO_DURATION:-}" ]]; then
    say "stopping by itself after ${DEMO_DURATION}s"
else
    say "Ctrl-C stops everything"
fi

DEMO_SUPERVISOR_PASSWORD=$PASSWORD RUST_LOG=${RUST_LOG:-info} "$RECEIVER" run --config "$CONFIG" &
RECEIVER_PID=$!

if [[ -n "${DEMO_DURATION:-}" ]]; then
    # Polled rather than a timer process, so nothing is left behind when Ctrl-C comes first.
    wait_gone "$RECEIVER_PID" $((DEMO_DURATION * 10)) || kill -TERM "$RECEIVER_PID" 2>/dev/null || true
fi

status=0
wait "$RECEIVER_PID" || status=$?
RECEIVER_PID=""
# After DEMO_DURATION the receiver was asked to stop (SIGTERM): its graceful exit is 0.
exit "$status"
