# Keystone (PyPI keystone 30.0.0), only with STACK_KEYSTONE=1: SQLite
# database and fernet keys under .stack/keystone, gunicorn on
# 127.0.0.1:5000. The passwords below protect nothing but this local
# test stack; clouds.yaml repeats them.

KEYSTONE_PORT=5000
KEYSTONE_URL="http://127.0.0.1:$KEYSTONE_PORT"
KEYSTONE_DIR="$STATE_DIR/keystone"
KEYSTONE_LOG="$LOG_DIR/keystone.log"
KEYSTONE_REGION=RegionOne
KEYSTONE_ADMIN_PASSWORD=kuryrnet-admin-password
KEYSTONE_NEUTRON_USER=neutron
KEYSTONE_NEUTRON_PASSWORD=kuryrnet-neutron-password
# Project, user and password of the two unprivileged projects.
KEYSTONE_PROJECT_A=(kuryrnet-project-a kuryrnet-user-a kuryrnet-user-a-password)
KEYSTONE_PROJECT_B=(kuryrnet-project-b kuryrnet-user-b kuryrnet-user-b-password)
# The user that kuryrnet runs as in project A: `member` and `service`, the
# role Neutron requires before it lets a caller set binding:host_id.
KEYSTONE_AGENT_A=(kuryrnet-project-a kuryrnet-agent-a kuryrnet-agent-a-password)

keystone_pidfile() { printf '%s\n' "$RUN_DIR/keystone.pid"; }
keystone_pid() { pid_from_file "$(keystone_pidfile)" gunicorn; }

keystone_healthy() {
    keystone_pid >/dev/null \
        && curl -sf -o /dev/null --max-time 5 "$KEYSTONE_URL/v3" 2>/dev/null
}

write_keystone_conf() {
    cat <<EOF
# Written by stack/stack up; edits are overwritten.
[DEFAULT]
debug = false

[database]
connection = sqlite:///$KEYSTONE_DIR/keystone.db

[token]
provider = fernet
EOF
    if [[ -n "${KEYSTONE_TOKEN_EXPIRATION:-}" ]]; then
        printf 'expiration = %s\n' "$KEYSTONE_TOKEN_EXPIRATION"
    fi
    cat <<EOF

[fernet_tokens]
key_repository = $KEYSTONE_DIR/fernet-keys

[fernet_receipts]
key_repository = $KEYSTONE_DIR/fernet-keys

[credential]
key_repository = $KEYSTONE_DIR/credential-keys
EOF
}

keystone_manage() {
    "$KEYSTONE_VENV/bin/keystone-manage" --config-file "$KEYSTONE_DIR/keystone.conf" "$@" \
        >>"$LOG_DIR/keystone-manage.log" 2>&1
}

# Database, keys and the bootstrap admin. A stamp skips this on later runs.
keystone_initialize() {
    local stamp="$KEYSTONE_DIR/initialized"
    [[ -f "$stamp" && -f "$KEYSTONE_DIR/keystone.db" ]] && return 0
    local log="$LOG_DIR/keystone-manage.log"
    say "keystone: creating the database, fernet keys and the admin user"
    mkdir -p "$KEYSTONE_DIR/fernet-keys" "$KEYSTONE_DIR/credential-keys"
    chmod 700 "$KEYSTONE_DIR/fernet-keys" "$KEYSTONE_DIR/credential-keys"
    keystone_manage db_sync || fail_piece keystone "keystone-manage db_sync failed" "$log"
    keystone_manage fernet_setup --keystone-user root --keystone-group root \
        || fail_piece keystone "keystone-manage fernet_setup failed" "$log"
    keystone_manage credential_setup --keystone-user root --keystone-group root \
        || fail_piece keystone "keystone-manage credential_setup failed" "$log"
    keystone_manage bootstrap --bootstrap-password "$KEYSTONE_ADMIN_PASSWORD" \
        --bootstrap-admin-url "$KEYSTONE_URL/v3/" \
        --bootstrap-internal-url "$KEYSTONE_URL/v3/" \
        --bootstrap-public-url "$KEYSTONE_URL/v3/" \
        --bootstrap-region-id "$KEYSTONE_REGION" \
        || fail_piece keystone "keystone-manage bootstrap failed" "$log"
    touch "$stamp"
}

keystone_start() {
    free_tcp_port keystone "$KEYSTONE_PORT"
    rm -f "$(keystone_pidfile)"
    say "keystone: starting on $KEYSTONE_URL"
    # One worker, because several processes writing to one SQLite file
    # fail with "database is locked".
    start_detached "$KEYSTONE_LOG" env \
        OS_KEYSTONE_CONFIG_DIR="$KEYSTONE_DIR" \
        OS_KEYSTONE_CONFIG_FILES=keystone.conf \
        "$KEYSTONE_VENV/bin/gunicorn" \
        --pythonpath "$STACK_SRC/python" \
        --bind "127.0.0.1:$KEYSTONE_PORT" \
        --workers 1 \
        --timeout 120 --graceful-timeout 5 \
        --pid "$(keystone_pidfile)" \
        --error-logfile "$KEYSTONE_LOG" \
        keystone_api:application
    wait_for 90 keystone_healthy \
        || fail_piece keystone "the API did not answer on $KEYSTONE_URL within 90 s" "$KEYSTONE_LOG"
}

keystone_stop() {
    local pid
    if pid=$(keystone_pid); then
        say "keystone: stopping pid $pid"
        stop_pid "$pid" 20
    fi
    rm -f "$(keystone_pidfile)"
}

keystone_project_users_json() {
    printf '[["%s","%s","%s",["member"]],["%s","%s","%s",["member"]],["%s","%s","%s",["member","service"]]]' \
        "${KEYSTONE_PROJECT_A[@]}" "${KEYSTONE_PROJECT_B[@]}" "${KEYSTONE_AGENT_A[@]}"
}

keystone_up() {
    local config_changed=1
    mkdir -p "$KEYSTONE_DIR"
    write_keystone_conf | write_if_changed "$KEYSTONE_DIR/keystone.conf" && config_changed=0
    keystone_initialize

    if keystone_healthy && (( config_changed == 0 )); then
        say "keystone: configuration changed; restarting"
        keystone_stop
    fi
    if ! keystone_healthy; then
        keystone_stop
        keystone_start
    fi

    local log="$LOG_DIR/keystone-setup.log"
    env KEYSTONE_URL="$KEYSTONE_URL" \
        KEYSTONE_ADMIN_PASSWORD="$KEYSTONE_ADMIN_PASSWORD" \
        KEYSTONE_NEUTRON_USER="$KEYSTONE_NEUTRON_USER" \
        KEYSTONE_NEUTRON_PASSWORD="$KEYSTONE_NEUTRON_PASSWORD" \
        KEYSTONE_REGION="$KEYSTONE_REGION" \
        NEUTRON_URL="$NEUTRON_URL" \
        KEYSTONE_PROJECT_USERS="$(keystone_project_users_json)" \
        "$KEYSTONE_VENV/bin/python" "$STACK_SRC/python/keystone_setup.py" >>"$log" 2>&1 \
        || fail_piece keystone "creating the service user, projects and users failed" "$log"
    say "keystone: running (pid $(keystone_pid), $KEYSTONE_URL)"
}

keystone_down() {
    keystone_stop
    stop_stack_listeners keystone "$KEYSTONE_PORT" \
        || warn "keystone: port $KEYSTONE_PORT is held by process $(tcp_listener_pid "$KEYSTONE_PORT"), which the stack did not start"
}

keystone_status() {
    if ! keystone_enabled && [[ "$(recorded_mode)" != keystone ]]; then
        if keystone_pid >/dev/null; then
            status_line keystone up "pid $(keystone_pid), $KEYSTONE_URL (not used: noauth mode)" "$KEYSTONE_LOG"
        else
            status_line keystone off "not used: start with STACK_KEYSTONE=1 stack/stack up"
        fi
        return 0
    fi
    if keystone_healthy; then
        status_line keystone up "pid $(keystone_pid), $KEYSTONE_URL" "$KEYSTONE_LOG"
    else
        status_line keystone down "no answer on $KEYSTONE_URL" "$KEYSTONE_LOG"
        return 1
    fi
}

keystone_pids() {
    local pid
    pid=$(keystone_pid) && printf 'keystone %s\n' "$pid"
    return 0
}
