# Files that tell tests and tools how to reach the stack: .stack/env (shell
# export lines), .stack/clouds.yaml (openstacksdk) and .stack/kuryr.conf
# (kuryrnet, read with oslo.config).

CLOUDS_FILE="$STATE_DIR/clouds.yaml"
KURYR_CONFIG_FILE="$STATE_DIR/kuryr.conf"
ADMIN_CLOUD=kuryrnet-admin

write_clouds_yaml() {
    printf '# Written by stack/stack up; edits are overwritten.\nclouds:\n'
    if ! keystone_enabled; then
        # Neutron runs with auth_strategy = noauth: no token at all, and the
        # network endpoint is given directly instead of from a catalog.
        cat <<EOF
  $ADMIN_CLOUD:
    auth_type: none
    network_endpoint_override: $NEUTRON_URL
EOF
        return 0
    fi
    local cloud project user password
    for cloud in admin project-a project-b; do
        case $cloud in
            admin) project=admin user=admin password=$KEYSTONE_ADMIN_PASSWORD ;;
            project-a) project=${KEYSTONE_PROJECT_A[0]} user=${KEYSTONE_PROJECT_A[1]} password=${KEYSTONE_PROJECT_A[2]} ;;
            project-b) project=${KEYSTONE_PROJECT_B[0]} user=${KEYSTONE_PROJECT_B[1]} password=${KEYSTONE_PROJECT_B[2]} ;;
        esac
        cat <<EOF
  kuryrnet-$cloud:
    auth_type: password
    auth:
      auth_url: $KEYSTONE_URL/v3
      username: $user
      password: $password
      project_name: $project
      user_domain_name: Default
      project_domain_name: Default
    region_name: $KEYSTONE_REGION
    identity_api_version: 3
EOF
    done
}

write_kuryr_conf() {
    cat <<EOF
# Written by stack/stack up for this stack; edits are overwritten.
[DEFAULT]
host_id = $STACK_HOST_ID
docker_url = unix://$(docker_socket)

[neutron]
EOF
    if keystone_enabled; then
        cat <<EOF
auth_type = password
auth_url = $KEYSTONE_URL/v3
username = admin
password = $KEYSTONE_ADMIN_PASSWORD
project_name = admin
user_domain_name = Default
project_domain_name = Default
EOF
    else
        cat <<EOF
auth_type = none
endpoint_override = $NEUTRON_URL
EOF
    fi
    cat <<EOF

[binding]
integration_bridge = $INTEGRATION_BRIDGE
EOF
}

env_line() {
    printf 'export %s=%q\n' "$1" "$2"
}

write_env() {
    local mode=noauth
    keystone_enabled && mode=keystone
    printf '# Written by stack/stack up; source it to reach the local stack.\n'
    env_line STACK_DIR "$STATE_DIR"
    env_line STACK_MODE "$mode"
    env_line STACK_HOST_ID "$STACK_HOST_ID"
    env_line DOCKER_HOST "unix://$(docker_socket)"
    env_line DOCKER "$DOCKER_CLIENT"
    env_line TEST_IMAGE "$TEST_IMAGE"
    env_line NEUTRON_URL "$NEUTRON_URL"
    env_line OS_CLIENT_CONFIG_FILE "$CLOUDS_FILE"
    env_line OS_CLOUD "$ADMIN_CLOUD"
    env_line KURYR_CONFIG "$KURYR_CONFIG_FILE"
    env_line KURYRNET "$CHECKOUT/.venv/bin/kuryrnet"
    env_line OVSDB_CONNECTION "unix:$OVS_RUN_DIR/db.sock"
    env_line INTEGRATION_BRIDGE "$INTEGRATION_BRIDGE"
    env_line OVN_NB_DB "$OVN_NB_DB"
    env_line OVN_SB_DB "$OVN_SB_DB"
    if keystone_enabled; then
        env_line OS_AUTH_URL "$KEYSTONE_URL/v3"
    fi
}

write_client_files() {
    write_clouds_yaml | write_if_changed "$CLOUDS_FILE" || true
    write_kuryr_conf | write_if_changed "$KURYR_CONFIG_FILE" || true
    write_env | write_if_changed "$ENV_FILE" || true
}
