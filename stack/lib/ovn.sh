# OVN: the northbound and southbound databases and ovn-northd with their
# files under .stack, and ovn-controller registered as this host's chassis on
# br-int. ovn-ctl reads OVN_RUNDIR, OVN_LOGDIR and OVN_DBDIR.

OVN_CTL=/usr/share/ovn/scripts/ovn-ctl
OVN_DB_DIR="$STATE_DIR/ovn"
OVN_LOG_DIR="$LOG_DIR/ovn"

ovn_environment() {
    export OVN_RUNDIR="$RUN_DIR/ovn" OVN_LOGDIR="$OVN_LOG_DIR" OVN_DBDIR="$OVN_DB_DIR"
    OVN_NB_DB="unix:$OVN_RUNDIR/ovnnb_db.sock"
    OVN_SB_DB="unix:$OVN_RUNDIR/ovnsb_db.sock"
}

nb_pid() { pid_from_file "$OVN_RUNDIR/ovnnb_db.pid" ovsdb-server; }
sb_pid() { pid_from_file "$OVN_RUNDIR/ovnsb_db.pid" ovsdb-server; }
northd_pid() { pid_from_file "$OVN_RUNDIR/ovn-northd.pid" ovn-northd; }
controller_pid() { pid_from_file "$OVN_RUNDIR/ovn-controller.pid" ovn-controller; }

# The daemons that ovn-ctl starts must not inherit the stack's lock.
run_ovn_ctl() {
    "$OVN_CTL" "$@" 9>&-
}

nbctl() { ovn-nbctl --db="$OVN_NB_DB" --timeout=10 "$@"; }
sbctl() { ovn-sbctl --db="$OVN_SB_DB" --timeout=10 "$@"; }

ovn_databases_healthy() {
    nb_pid >/dev/null && sb_pid >/dev/null \
        && ovn-nbctl --db="$OVN_NB_DB" --timeout=3 get-connection >/dev/null 2>&1 \
        && ovn-sbctl --db="$OVN_SB_DB" --timeout=3 get-connection >/dev/null 2>&1
}

northd_healthy() {
    local pid
    pid=$(northd_pid) || return 1
    ovn-appctl --timeout=3 -t "$OVN_RUNDIR/ovn-northd.$pid.ctl" status 2>/dev/null | grep -q 'Status: active'
}

# The chassis row of this host: named by the OVS system-id, with the
# hostname that ports are bound to.
chassis_registered() {
    local system_id
    system_id=$(ovs-vsctl --timeout=3 get Open_vSwitch . external_ids:system-id | tr -d '"')
    [[ "$(ovn-sbctl --db="$OVN_SB_DB" --timeout=3 --bare --columns=hostname find Chassis name="$system_id" 2>/dev/null)" == "$STACK_HOST_ID" ]]
}

controller_healthy() {
    controller_pid >/dev/null && chassis_registered
}

# Remove a process' stale pidfile and control sockets so that ovn-ctl does
# not mistake them for a running daemon.
clear_stale_daemon_files() {
    local name=$1
    rm -f "$OVN_RUNDIR/$name.pid" "$OVN_RUNDIR/$name.ctl" "$OVN_RUNDIR/$name.sock" "$OVN_RUNDIR/$name".*.ctl
}

ovn_central_up() {
    local piece=ovn-central
    mkdir -p "$OVN_RUNDIR" "$OVN_LOG_DIR" "$OVN_DB_DIR"
    if ovn_databases_healthy && northd_healthy; then
        return 0
    fi
    nb_pid >/dev/null || clear_stale_daemon_files ovnnb_db
    sb_pid >/dev/null || clear_stale_daemon_files ovnsb_db
    northd_pid >/dev/null || clear_stale_daemon_files ovn-northd

    say "$piece: starting the NB and SB databases and ovn-northd"
    run_ovn_ctl --no-monitor start_northd >>"$OVN_LOG_DIR/ovn-ctl.log" 2>&1 \
        || fail_piece "$piece" "ovn-ctl start_northd failed" "$OVN_LOG_DIR/ovn-ctl.log"
    wait_for 20 ovn_databases_healthy \
        || fail_piece "$piece" "the OVN databases do not answer on $OVN_RUNDIR" "$OVN_LOG_DIR/ovsdb-server-nb.log"
    wait_for 20 northd_healthy \
        || fail_piece "$piece" "ovn-northd is not active" "$OVN_LOG_DIR/ovn-northd.log"
}

ovn_controller_up() {
    local piece=ovn-controller log="$OVN_LOG_DIR/ovn-controller.log"

    # Settings that ovn-controller reads from the Open_vSwitch row. It
    # follows changes to them while running.
    vsctl --no-wait set Open_vSwitch . \
        external_ids:ovn-remote="$OVN_SB_DB" \
        external_ids:ovn-encap-type=geneve \
        external_ids:ovn-encap-ip=127.0.0.1 \
        external_ids:ovn-bridge="$INTEGRATION_BRIDGE" \
        external_ids:ovn-bridge-datapath-type=netdev \
        external_ids:hostname="$STACK_HOST_ID"

    if controller_healthy; then
        return 0
    fi
    if ! controller_pid >/dev/null; then
        clear_stale_daemon_files ovn-controller
        # A second ovn-controller on the same OVS database would fight over
        # br-int, so one that a stack left without a pidfile is stopped.
        stop_stray_stack_processes "$piece" ovn-controller

        # A chassis with this hostname but another name is a leftover of an
        # earlier system-id; Neutron would see two chassis for one host.
        local system_id name
        system_id=$(vsctl get Open_vSwitch . external_ids:system-id | tr -d '"')
        for name in $(sbctl --bare --columns=name find Chassis hostname="$STACK_HOST_ID"); do
            if [[ "$name" != "$system_id" ]]; then
                say "$piece: deleting stale chassis $name"
                sbctl chassis-del "$name" || true
            fi
        done

        say "$piece: starting, chassis hostname $STACK_HOST_ID"
        run_ovn_ctl --no-monitor start_controller >>"$OVN_LOG_DIR/ovn-ctl.log" 2>&1 \
            || fail_piece "$piece" "ovn-ctl start_controller failed" "$OVN_LOG_DIR/ovn-ctl.log"
    fi
    wait_for 30 controller_healthy \
        || fail_piece "$piece" "no chassis with hostname $STACK_HOST_ID appeared in the SB database" "$log"
}

ovn_up() {
    ovn_central_up
    ovn_controller_up
    say "ovn: running (NB pid $(nb_pid), SB pid $(sb_pid), northd pid $(northd_pid), controller pid $(controller_pid))"
}

ovn_down() {
    if controller_pid >/dev/null; then
        say "ovn-controller: stopping pid $(controller_pid)"
        run_ovn_ctl stop_controller >>"$OVN_LOG_DIR/ovn-ctl.log" 2>&1 || true
    fi
    if nb_pid >/dev/null || sb_pid >/dev/null || northd_pid >/dev/null; then
        say "ovn-central: stopping ovn-northd and the OVN databases"
        run_ovn_ctl stop_northd >>"$OVN_LOG_DIR/ovn-ctl.log" 2>&1 || true
    fi
    local pid
    for pid in $(controller_pid) $(northd_pid) $(nb_pid) $(sb_pid); do
        stop_pid "$pid" 10
    done
}

ovn_status() {
    local rc=0
    if ovn_databases_healthy; then
        status_line ovn-nb-sb up "NB pid $(nb_pid), SB pid $(sb_pid), $OVN_NB_DB" "$OVN_LOG_DIR/ovsdb-server-nb.log"
    else
        status_line ovn-nb-sb down "NB or SB database not answering in $OVN_RUNDIR" "$OVN_LOG_DIR/ovsdb-server-nb.log"
        rc=1
    fi
    if northd_healthy; then
        status_line ovn-northd up "pid $(northd_pid)" "$OVN_LOG_DIR/ovn-northd.log"
    else
        status_line ovn-northd down "not running or not active" "$OVN_LOG_DIR/ovn-northd.log"
        rc=1
    fi
    if (( rc == 0 )) && controller_healthy; then
        status_line ovn-controller up "pid $(controller_pid), chassis hostname $STACK_HOST_ID" "$OVN_LOG_DIR/ovn-controller.log"
    else
        status_line ovn-controller down "not running or chassis $STACK_HOST_ID not registered" "$OVN_LOG_DIR/ovn-controller.log"
        rc=1
    fi
    return $rc
}

ovn_pids() {
    local pid
    pid=$(nb_pid) && printf 'ovn-nb %s\n' "$pid"
    pid=$(sb_pid) && printf 'ovn-sb %s\n' "$pid"
    pid=$(northd_pid) && printf 'ovn-northd %s\n' "$pid"
    pid=$(controller_pid) && printf 'ovn-controller %s\n' "$pid"
    return 0
}
