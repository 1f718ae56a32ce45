#!/usr/bin/env bash
# `make docker-engine`: makes sure a Docker engine answers, for `make kind-test`. Idempotent.
#
#   tools/docker-engine.sh           install (if absent) and start (if none answers); prints DOCKER_HOST=…
#   tools/docker-engine.sh --check   exit 0 when an engine answers (the default one or ours), print nothing
#   tools/docker-engine.sh --stop    stop the engine this script started (never touches another one)
#
# 1. An engine already answering `docker info` (DOCKER_HOST, or /var/run/docker.sock) is used as is.
# 2. Else, when `dockerd` is missing, Debian's `docker.io` package is installed with apt-get (needs root).
# 3. Else dockerd is started in the background with its own data root, exec root, pidfile and socket under
#    $CLB_DOCKER_DIR (default $CLB_CACHE_DIR/docker), so it never clashes with a system engine and its images
#    (the kind node image, our images) survive between runs. Its log is $CLB_DOCKER_DIR/dockerd.log.
#
# Machine-specific fix (applied only where needed): on VMs whose capability bounding set lacks CAP_SYS_RESOURCE
# (CapBnd without bit 24 in /proc/self/status), every privileged container fails with "unable to apply caps:
# operation not permitted", and kind nodes are privileged containers. There the engine's default runtime is
# tools/kind/runc-no-sys-resource, a runc wrapper that removes CAP_SYS_RESOURCE from the OCI spec before
# calling runc. Machines with the full bounding set run plain runc.
#
# The tools use the engine through DOCKER_HOST: tools/kind/lib.sh sets it to our socket when no other engine
# answers, and the Makefile does the same.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/kind/lib.sh

mode="${1:-start}"
case "$mode" in
    --check) docker_env; docker_answers; exit $? ;;
    --stop)
        pid="$(cat "$CLB_DOCKER_DIR/dockerd.pid" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            while kill -0 "$pid" 2>/dev/null; do sleep 1; done
            log "dockerd $pid stopped"
        else
            log "no dockerd of ours is running"
        fi
        exit 0 ;;
    start) ;;
    *) echo "usage: $0 [--check|--stop]" >&2; exit 2 ;;
esac

if [[ -z "${DOCKER_HOST:-}" ]] && docker_answers; then
    log "a Docker engine already answers (default socket)"
    exit 0
fi
if [[ -n "${DOCKER_HOST:-}" && "$DOCKER_HOST" != "unix://$CLB_DOCKER_SOCK" ]]; then
    docker_answers || { log "DOCKER_HOST=$DOCKER_HOST does not answer"; exit 1; }
    log "the Docker engine at DOCKER_HOST=$DOCKER_HOST answers"
    exit 0
fi
export DOCKER_HOST="unix://$CLB_DOCKER_SOCK"
if docker_answers; then
    log "our Docker engine answers at $DOCKER_HOST"
    echo "DOCKER_HOST=$DOCKER_HOST"
    exit 0
fi

if ! command -v dockerd >/dev/null; then
    log "dockerd not found: installing Debian's docker.io with apt-get"
    sudo_cmd=()
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends docker.io
fi
command -v docker >/dev/null || { log "the docker CLI is missing (Debian: apt-get install docker-cli)"; exit 1; }
[[ "$(id -u)" == 0 ]] || { log "starting dockerd needs root"; exit 1; }

mkdir -p "$CLB_DOCKER_DIR"/{data,exec}
args=(--data-root "$CLB_DOCKER_DIR/data" --exec-root "$CLB_DOCKER_DIR/exec"
    --pidfile "$CLB_DOCKER_DIR/dockerd.pid" -H "unix://$CLB_DOCKER_SOCK")
if ! cap_in_bounding_set 24; then
    # Machine-specific: see the header. The wrapper is copied out of the checkout so the engine does not
    # depend on this clone staying where it is.
    py=/usr/bin/python3
    [[ -x "$py" ]] || py="$(command -v python3)" || { log "the runc wrapper needs python3"; exit 1; }
    sed "1s|.*|#!$py|" tools/kind/runc-no-sys-resource > "$CLB_DOCKER_DIR/runc-no-sys-resource"
    chmod 0755 "$CLB_DOCKER_DIR/runc-no-sys-resource"
    args+=(--add-runtime "runc-no-sys-resource=$CLB_DOCKER_DIR/runc-no-sys-resource"
        --default-runtime runc-no-sys-resource)
    log "CAP_SYS_RESOURCE is not in this machine's capability bounding set: default runtime is a runc wrapper that drops it"
fi
log "starting dockerd (data root $CLB_DOCKER_DIR/data, socket $CLB_DOCKER_SOCK, log $CLB_DOCKER_DIR/dockerd.log)"
# setsid: the engine outlives this script and make; it is stopped with `tools/docker-engine.sh --stop`.
setsid dockerd "${args[@]}" >>"$CLB_DOCKER_DIR/dockerd.log" 2>&1 < /dev/null &
for _ in $(seq 60); do
    if docker_answers; then
        log "dockerd answers at $DOCKER_HOST ($(docker version --format '{{.Server.Version}}'))"
        echo "DOCKER_HOST=$DOCKER_HOST"
        exit 0
    fi
    sleep 1
done
log "dockerd did not answer within 60 s; last log lines:"
tail -20 "$CLB_DOCKER_DIR/dockerd.log" >&2
exit 1
