# Neutron API (PyPI neutron 29.0.0, ML2/OVN) under gunicorn on
# 127.0.0.1:9696, with its database in the private MariaDB. Neutron 29 ships
# no neutron-server command: the API is the WSGI application
# neutron.wsgi.api:application, loaded through stack/python/neutron_api.py.

NEUTRON_PORT=9696
NEUTRON_URL="http://127.0.0.1:$NEUTRON_PORT"
NEUTRON_DIR="$STATE_DIR/neutron"
NEUTRON_ETC="$NEUTRON_DIR/etc"
NEUTRON_LOG="$LOG_DIR/neutron.log"
# Number of gunicorn worker processes. Each worker opens its own OVN database
# connections and serves one request at a time.
NEUTRON_WORKERS=${STACK_NEUTRON_WORKERS:-2}
# Threads per worker; more than 1 selects gunicorn's gthread worker class.
NEUTRON_THREADS=${STACK_NEUTRON_THREADS:-1}
NEUTRON_SERVICE_PLUGINS=ovn-router,trunk,segments,tag

neutron_pidfile() { printf '%s\n' "$RUN_DIR/neutron.pid"; }
neutron_pid() { pid_from_file "$(neutron_pidfile)" gunicorn; }

# HTTP status of a cheap API call: 200 without Keystone, 401 with it.
neutron_http_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$NEUTRON_URL/v2.0/networks?limit=1" 2>/dev/null || true
}

neutron_healthy() {
    neutron_pid >/dev/null || return 1
    local code
    code=$(neutron_http_code)
    [[ "$code" == 200 || "$code" == 401 ]]
}

write_neutron_conf() {
    local auth_strategy=noauth
    keystone_enabled && auth_strategy=keystone
    cat <<EOF
# Written by stack/stack up; edits are overwritten.
[DEFAULT]
host = $STACK_HOST_ID
core_plugin = ml2
service_plugins = $NEUTRON_SERVICE_PLUGINS
auth_strategy = $auth_strategy
api_paste_config = $NEUTRON_ETC/api-paste.ini
state_path = $NEUTRON_DIR/state
transport_url = fake:/
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
debug = false

[database]
connection = mysql+pymysql://$NEUTRON_DB_USER:$NEUTRON_DB_PASSWORD@127.0.0.1:$MYSQL_PORT/$NEUTRON_DB_NAME?charset=utf8mb4
max_pool_size = 20
max_overflow = 40

[oslo_messaging_notifications]
driver = noop

[oslo_concurrency]
lock_path = $NEUTRON_DIR/lock

[quotas]
default_quota = -1
quota_network = -1
quota_subnet = -1
quota_port = -1
quota_router = -1
quota_floatingip = -1
quota_security_group = -1
quota_security_group_rule = -1
quota_rbac_policy = -1
quota_router_route = -1
EOF
    if keystone_enabled; then
        cat <<EOF

[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL/v3
auth_url = $KEYSTONE_URL/v3
auth_type = password
username = $KEYSTONE_NEUTRON_USER
password = $KEYSTONE_NEUTRON_PASSWORD
project_name = service
user_domain_name = Default
project_domain_name = Default
EOF
    fi
}

write_ml2_conf() {
    cat <<EOF
# Written by stack/stack up; edits are overwritten.
[ml2]
type_drivers = geneve,flat,vlan
tenant_network_types = geneve
mechanism_drivers = ovn
extension_drivers = port_security,tag_ports_during_bulk_creation
overlay_ip_version = 4

[ml2_type_geneve]
vni_ranges = 1:65536
max_header_size = 38

[ml2_type_flat]
flat_networks = *

[ml2_type_vlan]
network_vlan_ranges = physnet1

[securitygroup]
enable_security_group = true

[ovn]
ovn_nb_connection = $OVN_NB_DB
ovn_sb_connection = $OVN_SB_DB
ovn_metadata_enabled = false
enable_distributed_floating_ip = false
EOF
}

# Write the configuration files and the gunicorn settings. Returns 0 when
# one of them changed.
neutron_configure() {
    local changed=1
    mkdir -p "$NEUTRON_ETC" "$NEUTRON_DIR/state" "$NEUTRON_DIR/lock"
    write_neutron_conf | write_if_changed "$NEUTRON_ETC/neutron.conf" && changed=0
    write_ml2_conf | write_if_changed "$NEUTRON_ETC/ml2_conf.ini" && changed=0
    write_if_changed "$NEUTRON_ETC/api-paste.ini" <"$NEUTRON_VENV/etc/neutron/api-paste.ini" && changed=0
    printf 'workers=%s threads=%s\n' "$NEUTRON_WORKERS" "$NEUTRON_THREADS" \
        | write_if_changed "$NEUTRON_DIR/gunicorn-settings" && changed=0
    return $changed
}

# Run neutron-db-manage unless the stamp file records that this Neutron
# version migrated this database and the database still has its alembic table.
neutron_migrate() {
    local stamp="$NEUTRON_DIR/db-migrated" version log="$LOG_DIR/neutron-db-manage.log"
    version=$("$NEUTRON_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("neutron"))')
    if [[ "$(cat "$stamp" 2>/dev/null)" == "$version $MYSQL_DATA_DIR" ]] \
        && mariadb_sql "SELECT 1 FROM $NEUTRON_DB_NAME.alembic_version LIMIT 1" >/dev/null 2>&1; then
        return 0
    fi
    say "neutron: migrating the database (neutron-db-manage upgrade heads)"
    "$NEUTRON_VENV/bin/neutron-db-manage" --config-file "$NEUTRON_ETC/neutron.conf" \
        --config-file "$NEUTRON_ETC/ml2_conf.ini" upgrade heads >>"$log" 2>&1 \
        || fail_piece neutron "neutron-db-manage upgrade heads failed" "$log"
    printf '%s\n' "$version $MYSQL_DATA_DIR" >"$stamp"
}

neutron_start() {
    free_tcp_port neutron "$NEUTRON_PORT"
    rm -f "$(neutron_pidfile)"
    # Neutron elects its "first" API worker and records the server start
    # time in files named after the parent PID in the temporary folder. A
    # private folder emptied at each start keeps a reused PID from matching
    # the files of an earlier run.
    rm -rf "$NEUTRON_DIR/tmp"
    mkdir -p "$NEUTRON_DIR/tmp"

    say "neutron: starting the API on $NEUTRON_URL ($NEUTRON_WORKERS workers x $NEUTRON_THREADS threads, $(keystone_enabled && echo keystone || echo noauth))"
    # Neutron reads the number of API workers from ASGI_WORKERS. Without it
    # the OVN hash ring fails with "The Neutron API workers count is zero".
    # --graceful-timeout 5 keeps a stop from waiting the default 30 s.
    start_detached "$NEUTRON_LOG" env \
        OS_NEUTRON_CONFIG_DIR="$NEUTRON_ETC" \
        OS_NEUTRON_CONFIG_FILES="neutron.conf;ml2_conf.ini" \
        ASGI_WORKERS="$NEUTRON_WORKERS" \
        TMPDIR="$NEUTRON_DIR/tmp" \
        "$NEUTRON_VENV/bin/gunicorn" \
        --pythonpath "$STACK_SRC/python" \
        --bind "127.0.0.1:$NEUTRON_PORT" \
        --workers "$NEUTRON_WORKERS" \
        --threads "$NEUTRON_THREADS" \
        --timeout 300 --graceful-timeout 5 \
        --pid "$(neutron_pidfile)" \
        --error-logfile "$NEUTRON_LOG" \
        neutron_api:application
    wait_for 180 neutron_healthy \
        || fail_piece neutron "the API did not answer on $NEUTRON_URL within 180 s" "$NEUTRON_LOG"
}

neutron_stop() {
    local pid
    if pid=$(neutron_pid); then
        say "neutron: stopping pid $pid"
        stop_pid "$pid" 20
    fi
    rm -f "$(neutron_pidfile)"
}

neutron_up() {
    local config_changed=1
    neutron_configure && config_changed=0
    neutron_migrate
    if neutron_healthy; then
        if (( config_changed == 0 )); then
            say "neutron: configuration changed; restarting"
            neutron_stop
            neutron_start
        fi
    else
        neutron_stop
        neutron_start
    fi
    say "neutron: running (pid $(neutron_pid), $NEUTRON_URL)"
}

neutron_down() {
    neutron_stop
    stop_stack_listeners neutron "$NEUTRON_PORT" \
        || warn "neutron: port $NEUTRON_PORT is held by process $(tcp_listener_pid "$NEUTRON_PORT"), which the stack did not start"
}

neutron_status() {
    if neutron_healthy; then
        status_line neutron up "pid $(neutron_pid), $NEUTRON_URL, $(recorded_mode)" "$NEUTRON_LOG"
    else
        status_line neutron down "no answer on $NEUTRON_URL" "$NEUTRON_LOG"
        return 1
    fi
}

neutron_pids() {
    local pid
    pid=$(neutron_pid) && printf 'neutron %s\n' "$pid"
    return 0
}
