# Shared shell setup for tools/docker-engine.sh and tools/kind/*.sh; sourced, not executed.

CLB_CACHE_DIR="${CLB_CACHE_DIR:-$HOME/.cache/clb-testbed}"
# The engine tools/docker-engine.sh starts when none answers: data root, socket, pidfile, log.
CLB_DOCKER_DIR="${CLB_DOCKER_DIR:-$CLB_CACHE_DIR/docker}"
CLB_DOCKER_SOCK="$CLB_DOCKER_DIR/docker.sock"

log() { echo "[$(basename "$0" .sh)] $*" >&2; }

docker_answers() { docker info >/dev/null 2>&1; }

# Uses our engine's socket when DOCKER_HOST is unset, the default engine does not answer and ours exists.
docker_env() {
    if [[ -z "${DOCKER_HOST:-}" && -S "$CLB_DOCKER_SOCK" ]] && ! docker_answers; then
        export DOCKER_HOST="unix://$CLB_DOCKER_SOCK"
    fi
}

# True when capability number $1 is in this process's bounding set.
cap_in_bounding_set() {
    local bnd
    bnd="$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)"
    (( (16#$bnd >> $1) & 1 ))
}

elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# Runs a command, printing "still <label>, <elapsed>" every 30 s so a long step never leaves a CI log
# silent. The command's output goes where it would anyway; returns its exit status.
with_heartbeat() { # label command...
    local label="$1"
    shift
    local begin=$SECONDS next=$((SECONDS + 30)) pid status=0
    "$@" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if ((SECONDS >= next)); then
            log "  still $label, $(elapsed $((SECONDS - begin))) elapsed"
            next=$((next + 30))
        fi
    done
    wait "$pid" || status=$?
    return "$status"
}
