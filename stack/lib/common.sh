# Paths, messages and process helpers shared by every piece of the stack.
# Sourced by stack/stack; expects STACK_SRC to be set to the stack/ folder.

CHECKOUT=$(cd "$STACK_SRC/.." && pwd)
STATE_DIR="$CHECKOUT/.stack"
LOG_DIR="$STATE_DIR/log"
ENV_FILE="$STATE_DIR/env"
MODE_FILE="$STATE_DIR/mode"

# Unix socket paths are limited to 107 bytes. Socket file names here take up
# to 30 bytes ("ovn-controller.<pid>.ctl"), so a checkout deep in the file
# system gets its run folder under /run, linked from .stack/run.
# Daemons are always given the short path itself, never the link.
choose_run_dir() {
    local link="$STATE_DIR/run"
    if (( ${#link} <= 72 )); then
        if [[ -L "$link" ]]; then
            rm -f "$link"
        fi
        RUN_DIR="$link"
    else
        local digest
        digest=$(printf '%s' "$CHECKOUT" | sha256sum | cut -c1-12)
        RUN_DIR="/run/kuryrnet-stack-$digest"
        mkdir -p "$RUN_DIR" "$STATE_DIR"
        if [[ "$(readlink "$link" 2>/dev/null)" != "$RUN_DIR" ]]; then
            rm -rf "$link"
            ln -s "$RUN_DIR" "$link"
        fi
    fi
    mkdir -p "$RUN_DIR" "$LOG_DIR"
}

say() {
    printf 'stack: %s\n' "$*"
}

warn() {
    printf 'stack: warning: %s\n' "$*" >&2
}

# Report a piece that failed to start, with the reason and the log to read,
# then exit non-zero.
fail_piece() {
    local piece=$1 reason=$2 log=${3:-}
    printf 'stack: %s failed: %s\n' "$piece" "$reason" >&2
    if [[ -n "$log" ]]; then
        printf 'stack: see the log %s; its last lines:\n' "$log" >&2
        tail -n 15 "$log" 2>/dev/null | sed 's/^/    /' >&2 || true
    fi
    exit 1
}

# Run a command until it succeeds or the timeout (seconds) expires.
wait_for() {
    local timeout=$1
    shift
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS >= deadline )); then
            return 1
        fi
        sleep 0.2
    done
}

pid_alive() {
    [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null
}

# Print the PID stored in a pidfile when that process is alive and its
# command line contains the expected word. A pidfile whose process is gone,
# or whose PID now belongs to another program, prints nothing.
pid_from_file() {
    local file=$1 expected=$2 pid
    [[ -r "$file" ]] || return 1
    pid=$(tr -dc '0-9' <"$file" 2>/dev/null)
    pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$expected" || return 1
    printf '%s\n' "$pid"
}

process_cmdline() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | sed 's/ *$//' || true
}

# Send SIGTERM, wait up to the timeout (seconds), then send SIGKILL.
stop_pid() {
    local pid=$1 timeout=${2:-15}
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$timeout" eval "! kill -0 $pid"; then
        warn "process $pid did not stop after SIGTERM within ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for 5 eval "! kill -0 $pid" || true
    fi
}

# Print the PID of a process that listens on a TCP port (any local address).
tcp_listener_pid() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true
}

# Processes started by a stack (this checkout or another) have "/.stack/" in
# their command line (data, socket or log paths). gunicorn workers retitle
# themselves after the application, which is one of the stack's own modules.
is_stack_process() {
    process_cmdline "$1" | grep -q -E -- '/\.stack/|(neutron|keystone)_api:application'
}

# Stop the processes of a stack that listen on a TCP port: orphaned gunicorn
# workers, for example, keep the listening socket until they notice that
# their master is gone. Returns 1 while a process that no stack started
# listens on the port, because the stack only ends processes of a stack.
stop_stack_listeners() {
    local piece=$1 port=$2 holder parent attempt
    for attempt in 1 2 3 4 5 6 7 8; do
        holder=$(tcp_listener_pid "$port")
        [[ -z "$holder" ]] && return 0
        is_stack_process "$holder" || return 1
        # A gunicorn master respawns the workers that hold its port, so it goes first.
        parent=$(ps -o ppid= -p "$holder" 2>/dev/null | tr -d ' ' || true)
        if [[ -n "$parent" && "$parent" != 1 ]] && is_stack_process "$parent"; then
            say "$piece: stopping process $parent left by a stack on port $port: $(process_cmdline "$parent" | cut -c1-120)"
            stop_pid "$parent" 10
        fi
        say "$piece: stopping process $holder left by a stack on port $port: $(process_cmdline "$holder" | cut -c1-120)"
        stop_pid "$holder" 10
    done
    return 1
}

# Make sure that the TCP port of a piece is free before the piece starts.
free_tcp_port() {
    local piece=$1 port=$2 holder
    stop_stack_listeners "$piece" "$port" && return 0
    holder=$(tcp_listener_pid "$port")
    fail_piece "$piece" "port 127.0.0.1:$port is in use by process $holder ($(process_cmdline "$holder" | cut -c1-120)); stop it or choose another port"
}

# Print the PIDs of running processes of a program, except the given one.
other_pids() {
    local comm=$1 own_pid=${2:-} pid
    for pid in $(pgrep -x "$comm" || true); do
        [[ "$pid" == "$own_pid" ]] || printf '%s\n' "$pid"
    done
}

# Stop processes of a program that a stack left running without a valid
# pidfile (a killed session, or another checkout), when they would clash
# with this one. Processes that no stack started are only reported.
stop_stray_stack_processes() {
    local piece=$1 comm=$2 own_pid=${3:-} pid
    for pid in $(other_pids "$comm" "$own_pid"); do
        if is_stack_process "$pid"; then
            say "$piece: stopping stray $comm process $pid: $(process_cmdline "$pid" | cut -c1-160)"
            stop_pid "$pid" 20
        else
            warn "$piece: $comm process $pid was not started by this stack; leaving it alone"
        fi
    done
}

# Write standard input to a file only when the content differs. Returns 0
# when the file changed and 1 when it already had this content.
write_if_changed() {
    local dest=$1 tmp
    tmp=$(mktemp "$dest.XXXXXX")
    cat >"$tmp"
    if [[ -f "$dest" ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$dest"
    return 0
}

# Start a daemon in its own session, detached from the caller's terminal and
# process group, with its output appended to a log file. File descriptor 9
# is the stack's lock (see take_lock), which a daemon must not inherit.
start_detached() {
    local log=$1
    shift
    setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
    disown $! 2>/dev/null || true
}

# Hostname of this machine as Python's socket.gethostname() returns it. It
# is the default binding host id of kuryrnet, so the OVN chassis uses it.
host_id() {
    python3 -c 'import socket; print(socket.gethostname())'
}

keystone_enabled() {
    [[ "${STACK_KEYSTONE:-0}" == "1" ]]
}

# The mode the last successful "up" started: "noauth" or "keystone".
recorded_mode() {
    cat "$MODE_FILE" 2>/dev/null || echo noauth
}

# Print one status line. Arguments: piece, "up" or "down", detail, log path.
status_line() {
    local piece=$1 state=$2 detail=$3 log=${4:-}
    local word=healthy
    [[ "$state" == up ]] || word=DOWN
    [[ "$state" == off ]] && word=off
    printf '%-16s %-8s %s' "$piece" "$word" "$detail"
    [[ -n "$log" ]] && printf '  (log: %s)' "$log"
    printf '\n'
}
