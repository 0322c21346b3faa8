# Open vSwitch with the userspace (netdev) datapath, because this kernel has
# no Open vSwitch module. The database and its socket stay in the system
# locations (/etc/openvswitch/conf.db, /var/run/openvswitch/db.sock), where
# ovs-vsctl, ovsdbapp and kuryrnet look by default. Logs go to .stack/log/ovs.

OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
OVS_RUN_DIR=/var/run/openvswitch
OVS_LOG_DIR="$LOG_DIR/ovs"
INTEGRATION_BRIDGE=br-int
OVS_CTL_OPTIONS=(--no-monitor --no-mlockall --no-record-hostname --system-id=random)

export OVS_LOGDIR="$OVS_LOG_DIR"

ovsdb_pid() { pid_from_file "$OVS_RUN_DIR/ovsdb-server.pid" ovsdb-server; }
vswitchd_pid() { pid_from_file "$OVS_RUN_DIR/ovs-vswitchd.pid" ovs-vswitchd; }

# The daemons that ovs-ctl starts must not inherit the stack's lock.
run_ovs_ctl() {
    "$OVS_CTL" "$@" 9>&-
}

vsctl() {
    ovs-vsctl --timeout=10 "$@"
}

ovsdb_healthy() {
    ovsdb_pid >/dev/null && ovs-vsctl --timeout=3 show >/dev/null 2>&1
}

vswitchd_healthy() {
    local pid
    pid=$(vswitchd_pid) || return 1
    ovs-appctl --timeout=3 -t "$OVS_RUN_DIR/ovs-vswitchd.$pid.ctl" version >/dev/null 2>&1
}

bridge_healthy() {
    [[ "$(vsctl get Bridge "$INTEGRATION_BRIDGE" datapath_type 2>/dev/null)" == netdev ]] \
        && ovs-ofctl show "$INTEGRATION_BRIDGE" >/dev/null 2>&1
}

# Delete ports of the integration bridge whose kernel interface no longer
# exists, such as the veths of namespaces deleted after a killed session.
# Tunnel, patch and internal ports are left to ovn-controller and OVS.
remove_stale_bridge_ports() {
    local ports name type stale=()
    mapfile -t ports < <(vsctl list-ports "$INTEGRATION_BRIDGE" 2>/dev/null)
    (( ${#ports[@]} == 0 )) && return 0
    declare -A on_bridge=()
    for name in "${ports[@]}"; do
        on_bridge[$name]=1
    done
    while IFS=, read -r name type; do
        name=${name//\"/}
        type=${type//\"/}
        [[ -n "${on_bridge[$name]:-}" ]] || continue
        [[ -z "$type" || "$type" == system ]] || continue
        if ! ip link show dev "$name" >/dev/null 2>&1; then
            stale+=(-- --if-exists del-port "$INTEGRATION_BRIDGE" "$name")
        fi
    done < <(vsctl --format=csv --data=bare --no-headings --columns=name,type list Interface)
    if (( ${#stale[@]} > 0 )); then
        say "ovs: deleting $(( ${#stale[@]} / 5 )) port(s) of $INTEGRATION_BRIDGE whose interface is gone"
        vsctl "${stale[@]}"
    fi
}

ovs_up() {
    local piece=ovs log="$OVS_LOG_DIR/ovsdb-server.log"
    mkdir -p "$OVS_LOG_DIR"

    if ! ovsdb_healthy; then
        if ! ovsdb_pid >/dev/null; then
            rm -f "$OVS_RUN_DIR/ovsdb-server.pid" "$OVS_RUN_DIR/db.sock" "$OVS_RUN_DIR"/ovsdb-server.*.ctl
        fi
        say "$piece: starting ovsdb-server"
        run_ovs_ctl "${OVS_CTL_OPTIONS[@]}" --no-ovs-vswitchd start >>"$OVS_LOG_DIR/ovs-ctl.log" 2>&1 \
            || fail_piece "$piece" "ovs-ctl could not start ovsdb-server" "$OVS_LOG_DIR/ovs-ctl.log"
        wait_for 20 ovsdb_healthy \
            || fail_piece "$piece" "ovsdb-server does not answer on $OVS_RUN_DIR/db.sock" "$log"
    fi

    # Without userspace TSO, TCP between veth ports of a netdev bridge
    # stalls. ovs-vswitchd reads this key only when it starts.
    local restart_vswitchd=0
    if [[ "$(vsctl --if-exists get Open_vSwitch . other_config:userspace-tso-enable 2>/dev/null)" != '"true"' ]]; then
        vsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
        restart_vswitchd=1
    fi

    log="$OVS_LOG_DIR/ovs-vswitchd.log"
    if vswitchd_healthy && (( restart_vswitchd )); then
        say "$piece: restarting ovs-vswitchd to turn on userspace TSO"
        run_ovs_ctl --no-ovsdb-server stop >>"$OVS_LOG_DIR/ovs-ctl.log" 2>&1 || true
    fi
    if ! vswitchd_healthy; then
        if ! vswitchd_pid >/dev/null; then
            rm -f "$OVS_RUN_DIR/ovs-vswitchd.pid" "$OVS_RUN_DIR"/ovs-vswitchd.*.ctl
        fi
        say "$piece: starting ovs-vswitchd (userspace datapath)"
        run_ovs_ctl "${OVS_CTL_OPTIONS[@]}" --no-ovsdb-server start >>"$OVS_LOG_DIR/ovs-ctl.log" 2>&1 \
            || fail_piece "$piece" "ovs-ctl could not start ovs-vswitchd" "$OVS_LOG_DIR/ovs-ctl.log"
        wait_for 20 vswitchd_healthy \
            || fail_piece "$piece" "ovs-vswitchd does not answer on its control socket" "$log"
    fi

    # fail_mode=secure: until ovn-controller installs its flows, br-int
    # forwards nothing instead of acting as a learning switch.
    vsctl --may-exist add-br "$INTEGRATION_BRIDGE" \
        -- set Bridge "$INTEGRATION_BRIDGE" datapath_type=netdev fail_mode=secure \
        other_config:disable-in-band=true
    wait_for 20 bridge_healthy \
        || fail_piece "$piece" "bridge $INTEGRATION_BRIDGE is not usable (datapath_type netdev)" "$log"
    remove_stale_bridge_ports
    say "$piece: running (ovsdb-server pid $(ovsdb_pid), ovs-vswitchd pid $(vswitchd_pid), bridge $INTEGRATION_BRIDGE)"
}

ovs_down() {
    if ovsdb_healthy; then
        vsctl --if-exists del-br "$INTEGRATION_BRIDGE" || true
    fi
    if ovsdb_pid >/dev/null || vswitchd_pid >/dev/null; then
        say "ovs: stopping ovs-vswitchd and ovsdb-server"
        run_ovs_ctl stop >>"$OVS_LOG_DIR/ovs-ctl.log" 2>&1 || true
    fi
    local pid
    for pid in $(vswitchd_pid) $(ovsdb_pid); do
        stop_pid "$pid" 10
    done
}

ovs_status() {
    local rc=0
    if ovsdb_healthy; then
        status_line ovsdb-server up "pid $(ovsdb_pid), $OVS_RUN_DIR/db.sock" "$OVS_LOG_DIR/ovsdb-server.log"
    else
        status_line ovsdb-server down "not answering on $OVS_RUN_DIR/db.sock" "$OVS_LOG_DIR/ovsdb-server.log"
        return 1
    fi
    if vswitchd_healthy && bridge_healthy; then
        status_line ovs-vswitchd up "pid $(vswitchd_pid), bridge $INTEGRATION_BRIDGE (netdev)" "$OVS_LOG_DIR/ovs-vswitchd.log"
    else
        status_line ovs-vswitchd down "not running or $INTEGRATION_BRIDGE missing" "$OVS_LOG_DIR/ovs-vswitchd.log"
        rc=1
    fi
    return $rc
}

ovs_pids() {
    local pid
    pid=$(ovsdb_pid) && printf 'ovsdb-server %s\n' "$pid"
    pid=$(vswitchd_pid) && printf 'ovs-vswitchd %s\n' "$pid"
    return 0
}
