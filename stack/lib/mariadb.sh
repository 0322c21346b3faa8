# MariaDB: a private instance for the Neutron database, on 127.0.0.1 with
# its data folder under .stack/mysql. It runs as root with --no-defaults, so
# the system configuration in /etc/mysql plays no part.

MYSQL_PORT=${STACK_MYSQL_PORT:-13306}
MYSQL_DATA_DIR="$STATE_DIR/mysql"
MYSQL_LOG="$LOG_DIR/mariadb.log"
NEUTRON_DB_USER=neutron
NEUTRON_DB_PASSWORD=neutron-stack-db
NEUTRON_DB_NAME=neutron

mysql_socket() { printf '%s\n' "$RUN_DIR/mysqld.sock"; }
mysql_pidfile() { printf '%s\n' "$RUN_DIR/mysqld.pid"; }

mariadb_pid() {
    pid_from_file "$(mysql_pidfile)" mariadbd
}

mariadb_healthy() {
    mariadb_pid >/dev/null \
        && mariadb-admin --no-defaults --socket="$(mysql_socket)" -uroot --connect-timeout=3 ping >/dev/null 2>&1
}

mariadb_sql() {
    mariadb --no-defaults --socket="$(mysql_socket)" -uroot -e "$1"
}

mariadb_up() {
    local piece=mariadb
    if mariadb_healthy; then
        say "$piece: running (pid $(mariadb_pid), 127.0.0.1:$MYSQL_PORT)"
    else
        # Remains of a MariaDB that was killed: its pidfile and socket.
        rm -f "$(mysql_pidfile)" "$(mysql_socket)" "$(mysql_socket).lock"
        free_tcp_port "$piece" "$MYSQL_PORT"

        if [[ ! -d "$MYSQL_DATA_DIR/mysql" ]]; then
            say "$piece: creating the data folder $MYSQL_DATA_DIR"
            rm -rf "$MYSQL_DATA_DIR"
            mkdir -p "$MYSQL_DATA_DIR"
            mariadb-install-db --no-defaults --datadir="$MYSQL_DATA_DIR" --user=root \
                --auth-root-authentication-method=socket --skip-test-db >>"$MYSQL_LOG" 2>&1 \
                || fail_piece "$piece" "mariadb-install-db failed for $MYSQL_DATA_DIR" "$MYSQL_LOG"
        fi

        say "$piece: starting on 127.0.0.1:$MYSQL_PORT"
        start_detached "$MYSQL_LOG" /usr/sbin/mariadbd --no-defaults \
            --datadir="$MYSQL_DATA_DIR" --user=root \
            --bind-address=127.0.0.1 --port="$MYSQL_PORT" \
            --socket="$(mysql_socket)" --pid-file="$(mysql_pidfile)" \
            --log-error="$MYSQL_LOG" --skip-name-resolve \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
            --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=2 \
            --max-connections=500
        wait_for 60 mariadb_healthy \
            || fail_piece "$piece" "no answer on $(mysql_socket) within 60 s" "$MYSQL_LOG"
        say "$piece: running (pid $(mariadb_pid))"
    fi

    mariadb_sql "CREATE DATABASE IF NOT EXISTS $NEUTRON_DB_NAME CHARACTER SET utf8mb4;
        CREATE USER IF NOT EXISTS '$NEUTRON_DB_USER'@'127.0.0.1' IDENTIFIED BY '$NEUTRON_DB_PASSWORD';
        GRANT ALL PRIVILEGES ON $NEUTRON_DB_NAME.* TO '$NEUTRON_DB_USER'@'127.0.0.1';" >>"$MYSQL_LOG" 2>&1 \
        || fail_piece "$piece" "creating the $NEUTRON_DB_NAME database and user failed" "$MYSQL_LOG"
}

mariadb_down() {
    local pid
    if pid=$(mariadb_pid); then
        say "mariadb: stopping pid $pid"
        stop_pid "$pid" 30
    fi
    rm -f "$(mysql_pidfile)" "$(mysql_socket)"
    stop_stack_listeners mariadb "$MYSQL_PORT" \
        || warn "mariadb: port $MYSQL_PORT is held by process $(tcp_listener_pid "$MYSQL_PORT"), which the stack did not start"
}

mariadb_status() {
    if mariadb_healthy; then
        status_line mariadb up "pid $(mariadb_pid), 127.0.0.1:$MYSQL_PORT" "$MYSQL_LOG"
    else
        status_line mariadb down "not answering on $(mysql_socket)" "$MYSQL_LOG"
        return 1
    fi
}

mariadb_pids() {
    local pid
    pid=$(mariadb_pid) && printf 'mariadb %s\n' "$pid"
    return 0
}
