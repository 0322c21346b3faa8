# Install step: Debian packages and the Python virtual environments of
# Neutron and Keystone, pinned by the constraints files in stack/.

DEBIAN_PACKAGES=(
    mariadb-server
    openvswitch-switch
    ovn-central
    ovn-host
    docker.io
    busybox-static
    iptables
    iproute2
    curl
)

NEUTRON_VENV="$STATE_DIR/venv-neutron"
KEYSTONE_VENV="$STATE_DIR/venv-keystone"
NEUTRON_REQUIREMENTS=(neutron==29.0.0 gunicorn PyMySQL)
KEYSTONE_REQUIREMENTS=(keystone==30.0.0 gunicorn)
STACK_PYTHON=${STACK_PYTHON:-python3}

missing_debian_packages() {
    local package
    for package in "${DEBIAN_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            printf '%s\n' "$package"
        fi
    done
}

install_debian_packages() {
    local missing log="$LOG_DIR/apt.log"
    mapfile -t missing < <(missing_debian_packages)
    if (( ${#missing[@]} == 0 )); then
        say "Debian packages: all present"
        return 0
    fi
    say "Debian packages: installing ${missing[*]} (log: $log)"

    # Package scripts must not start any service: a dockerd started by the
    # docker.io package would manage iptables and set the FORWARD policy to
    # DROP. With policy-rc.d exiting 101, invoke-rc.d starts nothing.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi

    local status=0
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        apt-get update >>"$log" 2>&1 || true
        apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1 || status=$?
    fi
    if (( added_policy )); then
        rm -f "$policy"
    fi
    if (( status != 0 )); then
        fail_piece "install" "apt-get install of ${missing[*]} failed with exit code $status" "$log"
    fi
}

venv_stamp() {
    local constraints=$1
    shift
    printf '%s %s\n' "$*" "$(sha256sum "$constraints" | cut -d' ' -f1)"
}

venv_current() {
    local venv=$1
    shift
    [[ -x "$venv/bin/python" ]] || return 1
    [[ "$(cat "$venv/.stack-installed" 2>/dev/null)" == "$(venv_stamp "$@")" ]]
}

# Create or update a virtual environment. The stamp file stores the
# requirements and the constraints file's checksum, so a second run with
# nothing changed costs one file comparison.
install_venv() {
    local name=$1 venv=$2 constraints=$3
    shift 3
    local requirements=("$@") log="$LOG_DIR/pip-$name.log"
    local wanted
    wanted=$(venv_stamp "$constraints" "${requirements[@]}")
    if venv_current "$venv" "$constraints" "${requirements[@]}"; then
        say "$name virtual environment: up to date ($venv)"
        return 0
    fi
    say "$name virtual environment: installing ${requirements[*]} into $venv (log: $log)"
    if [[ ! -x "$venv/bin/python" ]]; then
        "$STACK_PYTHON" -m venv "$venv" >>"$log" 2>&1 \
            || fail_piece "install" "creating the virtual environment $venv failed" "$log"
    fi
    "$venv/bin/pip" install --disable-pip-version-check -c "$constraints" "${requirements[@]}" >>"$log" 2>&1 \
        || fail_piece "install" "pip install of ${requirements[*]} into $venv failed" "$log"
    printf '%s\n' "$wanted" >"$venv/.stack-installed"
}

cmd_install() {
    mkdir -p "$STATE_DIR" "$LOG_DIR"
    install_debian_packages
    install_venv neutron "$NEUTRON_VENV" "$STACK_SRC/constraints-neutron.txt" "${NEUTRON_REQUIREMENTS[@]}"
    if keystone_enabled; then
        install_venv keystone "$KEYSTONE_VENV" "$STACK_SRC/constraints-keystone.txt" "${KEYSTONE_REQUIREMENTS[@]}"
    fi
    say "install: done"
}

# "up" runs the install step first when something is missing, so that a
# fresh clone needs a single command.
install_needed() {
    [[ -n "$(missing_debian_packages)" ]] && return 0
    venv_current "$NEUTRON_VENV" "$STACK_SRC/constraints-neutron.txt" "${NEUTRON_REQUIREMENTS[@]}" || return 0
    if keystone_enabled \
        && ! venv_current "$KEYSTONE_VENV" "$STACK_SRC/constraints-keystone.txt" "${KEYSTONE_REQUIREMENTS[@]}"; then
        return 0
    fi
    return 1
}
