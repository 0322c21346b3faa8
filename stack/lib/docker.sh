# Docker engine (Debian docker.io 20.10): /usr/sbin/dockerd with its data
# root, socket and pidfile under .stack, and the default exec root
# /var/run/docker, because remote network drivers get container sandbox
# keys under /var/run/docker/netns. dockerd never touches iptables or IP
# forwarding here: its iptables rules set the FORWARD policy to DROP and
# break every other bridge on the machine.

DOCKERD=/usr/sbin/dockerd
# The engine's API is 1.41; newer clients send flags it rejects.
DOCKER_CLIENT=/usr/bin/docker
DOCKER_DATA_ROOT="$STATE_DIR/docker"
DOCKER_EXEC_ROOT=/var/run/docker
DOCKER_LOG="$LOG_DIR/docker.log"
TEST_IMAGE=kuryrnet-busybox:latest

docker_socket() { printf '%s\n' "$RUN_DIR/docker.sock"; }
docker_pidfile() { printf '%s\n' "$RUN_DIR/docker.pid"; }
docker_pid() { pid_from_file "$(docker_pidfile)" dockerd; }
containerd_pid() { pid_from_file "$DOCKER_EXEC_ROOT/containerd/containerd.pid" containerd; }

docker_cli() {
    "$DOCKER_CLIENT" -H "unix://$(docker_socket)" "$@"
}

docker_healthy() {
    docker_pid >/dev/null && docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# Unmount a folder and everything mounted below it, deepest first.
# /proc/mounts lists resolved paths (/run/docker, not /var/run/docker).
unmount_tree() {
    local dir mount_point
    dir=$(readlink -m "$1")
    for mount_point in $(awk -v dir="$dir" '$2 == dir || index($2, dir "/") == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$mount_point" 2>/dev/null || warn "could not unmount $mount_point"
    done
}

# Unmount the Docker data roots of stacks in other checkouts whose dockerd
# is gone: the data root itself and the overlay mounts of their containers.
unmount_stale_data_roots() {
    local live_roots="" pid root
    for pid in $(pgrep -x dockerd || true); do
        live_roots+="$(process_cmdline "$pid" | grep -o -- '--data-root [^ ]*' | cut -d' ' -f2 || true)"$'\n'
    done
    for root in $(awk 'match($2, /^.*\/\.stack\/docker(\/|$)/) { print substr($2, 1, RLENGTH) }' /proc/mounts \
        | sed 's,/$,,' | sort -u); do
        if ! grep -qxF -- "$root" <<<"$live_roots"; then
            say "docker: unmounting the data root $root of a dockerd that is gone"
            unmount_tree "$root"
        fi
    done
}

# Clear what a killed dockerd left in the exec root: network namespace
# mounts, container mounts, pidfiles and its orphaned containerd. Runs only
# while no dockerd of this stack is alive.
clear_docker_exec_root() {
    local piece=docker pid
    for pid in $(other_pids dockerd); do
        if is_stack_process "$pid"; then
            say "$piece: stopping dockerd $pid left by a stack: $(process_cmdline "$pid" | cut -c1-160)"
            stop_pid "$pid" 40
        elif ! process_cmdline "$pid" | grep -q -- '--exec-root'; then
            fail_piece "$piece" "another dockerd (pid $pid) uses the exec root $DOCKER_EXEC_ROOT; stop it first"
        fi
    done

    # dockerd starts its own containerd, configured from the exec root. One
    # still alive here lost its dockerd and would be reused with a stale state.
    for pid in $(pgrep -x containerd || true); do
        if process_cmdline "$pid" | grep -q -- "$DOCKER_EXEC_ROOT/containerd/containerd.toml"; then
            say "$piece: stopping containerd $pid left by a dockerd that is gone"
            stop_pid "$pid" 20
        fi
    done

    # Containers of a containerd that is gone keep their runc state and
    # their shim processes, which wait for a containerd that never returns.
    local runc_root="$DOCKER_EXEC_ROOT/runtime-runc/moby" id
    if [[ -d "$runc_root" ]] && ! containerd_pid >/dev/null; then
        for id in $(runc --root "$runc_root" list -q 2>/dev/null || true); do
            say "$piece: deleting container $id of a containerd that is gone"
            runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1 \
                || warn "runc could not delete container $id"
        done
        for pid in $(pgrep -f "^/usr/bin/containerd-shim-runc-v2 .*-address $DOCKER_EXEC_ROOT/containerd/containerd.sock" || true); do
            say "$piece: stopping containerd-shim $pid of a containerd that is gone"
            stop_pid "$pid" 5
        done
    fi

    if [[ -d "$DOCKER_EXEC_ROOT" ]]; then
        unmount_tree "$DOCKER_EXEC_ROOT"
        rm -rf "$DOCKER_EXEC_ROOT/netns" || warn "could not remove $DOCKER_EXEC_ROOT/netns"
        rm -f "$DOCKER_EXEC_ROOT/containerd/containerd.pid"
    fi
    unmount_tree "$DOCKER_DATA_ROOT"
    unmount_stale_data_roots
    rm -f "$(docker_pidfile)" "$(docker_socket)"
}

docker_start() {
    mkdir -p "$DOCKER_DATA_ROOT"
    # An empty configuration file keeps /etc/docker/daemon.json out of play.
    printf '{}\n' >"$STATE_DIR/docker-daemon.json"
    say "docker: starting dockerd on unix://$(docker_socket)"
    start_detached "$DOCKER_LOG" "$DOCKERD" \
        --config-file "$STATE_DIR/docker-daemon.json" \
        --iptables=false --ip6tables=false --ip-forward=false \
        --storage-driver=overlay2 \
        --data-root "$DOCKER_DATA_ROOT" \
        --host "unix://$(docker_socket)" \
        --pidfile "$(docker_pidfile)"
    wait_for 60 docker_healthy \
        || fail_piece docker "dockerd did not answer on $(docker_socket) within 60 s" "$DOCKER_LOG"
}

# Build the test image from Debian's busybox-static: the binary plus one
# symbolic link per applet, so that every applet (true, ping, ip, ...) runs.
docker_build_test_image() {
    docker_cli image inspect "$TEST_IMAGE" >/dev/null 2>&1 && return 0
    say "docker: building $TEST_IMAGE from /bin/busybox"
    local rootfs applet
    rootfs=$(mktemp -d "$STATE_DIR/busybox-rootfs.XXXXXX")
    mkdir -p "$rootfs/bin" "$rootfs/sbin" "$rootfs/usr/bin" "$rootfs/usr/sbin" \
        "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/root"
    cp /bin/busybox "$rootfs/bin/busybox"
    while read -r applet; do
        [[ "$applet" == bin/busybox ]] && continue
        mkdir -p "$rootfs/$(dirname "$applet")"
        ln -sf /bin/busybox "$rootfs/$applet"
    done < <(/bin/busybox --list-full)
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\n' >"$rootfs/etc/group"
    chmod 1777 "$rootfs/tmp"
    tar -C "$rootfs" -c . | docker_cli import -c 'CMD ["/bin/sh"]' - "$TEST_IMAGE" >>"$DOCKER_LOG" 2>&1 \
        || { rm -rf "$rootfs"; fail_piece docker "docker import of $TEST_IMAGE failed" "$DOCKER_LOG"; }
    rm -rf "$rootfs"
}

docker_up() {
    if ! docker_healthy; then
        if pid=$(docker_pid); then
            say "docker: dockerd $pid does not answer; restarting it"
            stop_pid "$pid" 40
        fi
        clear_docker_exec_root
        docker_start
    fi
    docker_build_test_image
    say "docker: running (pid $(docker_pid), unix://$(docker_socket), image $TEST_IMAGE)"
}

docker_down() {
    local pid
    if pid=$(docker_pid); then
        say "docker: stopping dockerd $pid (running containers are stopped with it)"
        stop_pid "$pid" 60
    fi
    if pid=$(containerd_pid); then
        stop_pid "$pid" 20
    fi
    clear_docker_exec_root
    # dockerd creates the default bridge at start and leaves it at exit.
    if ip link show dev docker0 >/dev/null 2>&1; then
        ip link delete docker0 || warn "could not delete the docker0 bridge"
    fi
}

docker_status() {
    if docker_healthy; then
        status_line docker up "pid $(docker_pid), unix://$(docker_socket)" "$DOCKER_LOG"
    else
        status_line docker down "dockerd not answering on $(docker_socket)" "$DOCKER_LOG"
        return 1
    fi
}

docker_pids() {
    local pid
    pid=$(docker_pid) && printf 'dockerd %s\n' "$pid"
    pid=$(containerd_pid) && printf 'containerd %s\n' "$pid"
    return 0
}
