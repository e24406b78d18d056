#!/usr/bin/env bash
# Checks everything under deploy/ without running any of it (docs/deploy.md says what each
# check covers and what it does not):
#   alert rules     promtool check rules, promtool test rules (each alert firing and quiet),
#                   promtool check config of the demo's prometheus.yml
#   dashboards      JSON; every PromQL/Datadog query names only metrics and attributes of
#                   docs/metrics.md; the documented rule and monitor are used word for word
#   containers      the Dockerfile's structure (dockerfile-parse), the compose file's
#                   references (`docker compose config` too where the plugin is installed)
#   configs         the receiver configs with `supervisord-receiver validate`, the
#                   Collector configs' pipelines
#   kubernetes      every manifest against the Kubernetes 1.30 schemas (kubernetes-validate,
#                   strict), plus security context, resources, probes and references
#   systemd         systemd-analyze verify and an offline `security` score
#   docs            docs/deploy.md names every file under deploy/
#
#   bash deploy/check.sh
#
# Installs what it needs under target/: a venv (target/deploy-venv) from PyPI, promtool from
# Debian's prometheus package (target/promtool, shared with the tests). Warm, about 3 s; with
# neither the venv nor promtool yet, about 15 s; plus building the receiver if cargo test has
# not (`cargo build`, minutes from cold).
# Exits 1 when any check fails, after running them all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac
VENV=$TARGET_DIR/deploy-venv
WORK=$TARGET_DIR/deploy-check          # scratch, emptied at each run
K8S_VERSION=1.30.0
# Pinned: the same checks on every machine.
REQUIREMENTS="kubernetes-validate==1.37.0 dockerfile-parse==2.0.1 PyYAML==6.0.4"

say() { printf '%s\n' "$@"; }
die() { printf 'deploy/check.sh: %s\n' "$*" >&2; exit 1; }
export PYTHONDONTWRITEBYTECODE=1
rm -rf "$WORK" && mkdir -p "$WORK"

# --- tools --------------------------------------------------------------------------------
say "== tools"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]]; then
    command -v python3 >/dev/null || die "python3 (with venv) is needed"
    say "  creating $VENV: $REQUIREMENTS"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS \
        || die "pip install into $VENV failed"
    echo "$REQUIREMENTS" >"$VENV/.requirements"
fi
PY=$VENV/bin/python
say "  venv: $VENV ($REQUIREMENTS)"

# promtool: the tests' copy (tests/testkit/promtool.rs) in target/promtool, else PATH, else
# extracted the same way: `apt-get download prometheus` and `dpkg-deb -x`, promtool kept. No
# Prometheus server is ever installed or started.
PROMTOOL=$TARGET_DIR/promtool/promtool
if ! "$PROMTOOL" --version >/dev/null 2>&1; then
    if command -v promtool >/dev/null; then
        PROMTOOL=$(command -v promtool)
    else
        say "  extracting promtool from Debian's prometheus package into $TARGET_DIR/promtool"
        staging=$TARGET_DIR/promtool.tmp-$$
        rm -rf "$staging" && mkdir -p "$staging"
        (cd "$staging" && apt-get download prometheus >/dev/null 2>&1) \
            || { apt-get update -qq && (cd "$staging" && apt-get download prometheus >/dev/null); } \
            || die "apt-get download prometheus failed (no package lists? run apt-get update as root)"
        dpkg-deb -x "$staging"/prometheus_*.deb "$staging/unpacked" || die "dpkg-deb -x failed"
        mv "$staging/unpacked/usr/bin/promtool" "$staging/promtool"
        rm -rf "$staging/unpacked" "$staging"/*.deb "$TARGET_DIR/promtool"
        mv "$staging" "$TARGET_DIR/promtool"
        PROMTOOL=$TARGET_DIR/promtool/promtool
    fi
fi
say "  promtool: $PROMTOOL ($("$PROMTOOL" --version 2>&1 | head -1))"

# --- the checks ---------------------------------------------------------------------------
PASSED=0
FAILED=()
check() {                                   # check NAME FUNCTION: run it, remember the result
    say "" "== $1"
    # Not in an `if`: there bash would ignore set -e inside the function.
    set +e
    ( set -euo pipefail; "$2" )
    local status=$?
    set -e
    if ((status == 0)); then
        PASSED=$((PASSED + 1))
    else
        say "  FAILED: $1"
        FAILED+=("$1")
    fi
}
skip() { say "  SKIPPED: $*"; echo "$*" >>"$WORK/skipped"; }   # in the check's subshell

parse_files() {
    find deploy -name '*.json' -print0 | sort -z | while IFS= read -r -d '' f; do
        "$PY" -m json.tool "$f" >/dev/null || { echo "  $f: not JSON"; exit 1; }
        echo "  $f: JSON"
    done
    find deploy \( -name '*.yaml' -o -name '*.yml' \) -print0 | sort -z | while IFS= read -r -d '' f; do
        "$PY" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" \
            || { echo "  $f: not YAML"; exit 1; }
        echo "  $f: YAML"
    done
}

prometheus_rules() {
    "$PROMTOOL" check rules deploy/alerts/prometheus-rules.yaml
    (cd deploy/alerts && "$PROMTOOL" test rules prometheus-rules.test.yaml)
    # The demo's Prometheus config, with the rules beside it as in the container.
    mkdir -p "$WORK/prometheus"
    cp deploy/docker/prometheus.yml deploy/alerts/prometheus-rules.yaml "$WORK/prometheus/"
    "$PROMTOOL" check config "$WORK/prometheus/prometheus.yml"
    "$PY" deploy/check.py rules deploy/alerts/prometheus-rules.yaml deploy/alerts/prometheus-rules.test.yaml
}

dashboards() {
    "$PY" deploy/check.py grafana deploy/dashboards/grafana-supervisord.json
    "$PY" deploy/check.py datadog deploy/dashboards/datadog-supervisord.json deploy/alerts/datadog-monitors.json
}

containers() {
    "$PY" deploy/check.py dockerfile deploy/docker/Dockerfile
    "$PY" deploy/check.py compose deploy/docker/docker-compose.yaml
    if docker compose version >/dev/null 2>&1; then
        docker compose -f deploy/docker/docker-compose.yaml config --quiet
        echo "  docker compose config: valid"
    else
        skip "docker compose config: the compose plugin is not installed (the static checks above ran)"
    fi
    if docker info >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; then
        docker build --check -f deploy/docker/Dockerfile .
    else
        skip "docker build --check: no Docker daemon with buildx here; the image is not built"
    fi
}

collector_configs() {
    "$PY" deploy/check.py collectors deploy/otel-collector.yaml deploy/docker/otel-collector.yaml \
        deploy/kubernetes/collector-gateway.yaml
}

receiver_configs() {
    command -v cargo >/dev/null || { echo "  cargo is needed to build the receiver"; exit 1; }
    cargo build --quiet --bin supervisord-receiver
    local bin=$TARGET_DIR/debug/supervisord-receiver strip=()
    # `admin:` comes with the `status` command; a build from before both has neither, and its
    # configs are validated without that section.
    if ! "$bin" --help | grep -qE '^ +status '; then
        strip=(--strip-admin)
        echo "  this build has no \`status\` command yet: validating without the admin: sections"
    fi
    "$PY" deploy/check.py receiver-configs "$WORK/receiver" "${strip[@]}" >"$WORK/receiver.list"
    while IFS=$'\t' read -r file origin; do
        NODE_NAME=node-1 POD_NAME=receiver-0 SUPERVISOR_PASSWORD=secret \
            "$bin" validate --config "$file" >/dev/null \
            || { echo "  $origin: invalid (above)"; exit 1; }
        echo "  $origin: valid"
    done <"$WORK/receiver.list"
}

kubernetes() {
    "$VENV/bin/kubernetes-validate" --kubernetes-version "$K8S_VERSION" --strict --quiet deploy/kubernetes/*.yaml
    echo "  deploy/kubernetes/*.yaml: valid against the Kubernetes $K8S_VERSION schemas (strict)"
    "$PY" deploy/check.py kubernetes deploy/kubernetes/*.yaml
}

systemd_unit() {
    local unit=deploy/supervisord-receiver.service
    # The unit names /usr/local/bin/supervisord-receiver, which verify wants to exist: check a
    # copy that points at a stand-in instead.
    mkdir -p "$WORK/systemd"
    printf '#!/bin/sh\n' >"$WORK/systemd/supervisord-receiver" && chmod +x "$WORK/systemd/supervisord-receiver"
    sed "s#^ExecStart=/usr/local/bin/supervisord-receiver#ExecStart=$WORK/systemd/supervisord-receiver#" \
        "$unit" >"$WORK/systemd/supervisord-receiver.service"
    if ! command -v systemd-analyze >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "  installing Debian's systemd package for systemd-analyze"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1 \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; } || true
    fi
    local copy=$WORK/systemd/supervisord-receiver.service verify=$WORK/systemd/verify.txt
    local verified=no
    if command -v systemd-analyze >/dev/null; then
        if systemd-analyze verify "$copy" >"$verify" 2>&1 && [[ ! -s "$verify" ]]; then
            echo "  systemd-analyze verify: no warnings"
            verified=yes
        elif grep -q "^$copy:" "$verify"; then
            # About the unit itself (unknown keys, bad values); verify exits 0 on many of them.
            sed "s#$WORK/systemd/#deploy/#" "$verify"
            exit 1
        else
            cat "$verify"
        fi
    fi
    if [[ $verified == yes ]]; then
        systemd-analyze security --offline=true --threshold=25 "$copy" >"$WORK/systemd/security.txt" 2>&1 \
            && status=0 || status=$?
        level=$(grep -o 'exposure level.*' "$WORK/systemd/security.txt" || true)
        if ((status == 0)); then
            echo "  systemd-analyze security: $level (at most 2.5 allowed)"
        elif [[ -n $level ]]; then
            grep '✗' "$WORK/systemd/security.txt"
            echo "  systemd-analyze security: $level, over 2.5"
            exit 1
        else
            skip "systemd-analyze security --offline: not supported by this systemd"
        fi
    else
        skip "systemd-analyze cannot run here: only the lighter check below"
    fi
    # Lighter check, always: the unit parses and keeps its hardening.
    "$PY" - "$unit" <<'EOF'
import configparser, sys
ini = configparser.RawConfigParser(strict=False, interpolation=None)
ini.optionxform = str
ini.read(sys.argv[1])
svc = ini["Service"]
want = {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "CapabilityBoundingSet": "", "RestrictNamespaces": "yes", "MemoryDenyWriteExecute": "yes"}
bad = [f"{k}={v}" for k, v in want.items() if svc.get(k) != v]
if bad or "ExecStart" not in svc or "WantedBy" not in ini["Install"]:
    sys.exit(f"  {sys.argv[1]}: missing {bad or 'ExecStart/WantedBy'}")
print(f"  {sys.argv[1]}: parses, hardening in place ({', '.join(want)})")
EOF
    "$PY" - deploy/supervisord-eventlistener.conf <<'EOF'
import configparser, sys
ini = configparser.RawConfigParser(inline_comment_prefixes=(";",), interpolation=None)
ini.read(sys.argv[1])
listener = ini["eventlistener:otel"]
assert "supervisord-receiver listen --config" in listener["command"], "command is not `listen`"
assert "PROCESS_STATE" in listener["events"], "no PROCESS_STATE events"
assert listener.get("redirect_stderr", "false") != "true", "stderr redirected into the protocol"
print(f"  {sys.argv[1]}: parses, runs `listen` on PROCESS_STATE events")
EOF
}

documentation() {
    "$PY" deploy/check.py docs
}

check "files parse" parse_files
check "Prometheus rules" prometheus_rules
check "dashboards and Datadog monitors" dashboards
check "Dockerfile and compose" containers
check "OpenTelemetry Collector configs" collector_configs
check "receiver configs" receiver_configs
check "Kubernetes manifests" kubernetes
check "systemd unit and event listener" systemd_unit
check "docs/deploy.md" documentation

say "" "deploy/check.sh: $((SECONDS))s"
SKIPPED=0
if [[ -f "$WORK/skipped" ]]; then SKIPPED=$(wc -l <"$WORK/skipped"); fi
say "deploy: $PASSED passed, ${#FAILED[@]} failed, $SKIPPED skipped"
if ((${#FAILED[@]})); then
    printf 'deploy/check.sh: FAILED: %s\n' "${FAILED[@]}" >&2
    exit 1
fi
