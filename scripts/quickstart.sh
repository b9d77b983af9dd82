#!/usr/bin/env bash
# pgregion quickstart: on Debian 12, installs what is missing (apt), builds, starts
# a local PostgreSQL 15 primary + 1 streaming replica and pgregion in front of
# them, runs a short pgbench through pgregion and prints the DATABASE_URL.
#
#   scripts/quickstart.sh          start (or restart: stops a previous run first)
#   scripts/quickstart.sh stop     stop pgregion and the cluster
#   scripts/quickstart.sh status   show what is running
#
# Environment: QUICKSTART_DIR (state dir, default .tmp/quickstart in the repo),
# PGREGION_PORT (default 6432, or a free port if 6432 is taken),
# SKIP_INSTALL=1 (do not touch apt), SKIP_BUILD=1 (use the existing build).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${QUICKSTART_DIR:-$REPO/.tmp/quickstart}
PYTHON=/usr/bin/python3
HARNESS=$REPO/tests/harness/cluster.py
PGREGION_BIN=$REPO/build/proxy/pgregion
PIDFILE=$STATE/pgregion.pid
LOGFILE=$STATE/pgregion.log
CONFIG=$STATE/pgregion.toml
# Where the cluster lives; recorded in $STATE/cluster.path (see pick_cluster_dir).
CLUSTER_DIR=$STATE/cluster
if [[ -f $STATE/cluster.path ]]; then CLUSTER_DIR=$(cat "$STATE/cluster.path"); fi
APP_USER=app APP_PASSWORD=secret APP_DB=appdb

PACKAGES=(build-essential meson ninja-build pkg-config libuv1-dev libpq-dev libssl-dev libabsl-dev
  prometheus-cpp-dev libtoml11-dev doctest-dev libpg-query-dev postgresql postgresql-client
  python3-psycopg openssl)

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
STARTING=0
die() {
  printf 'quickstart: ERROR: %s\n' "$*" >&2
  if [[ $STARTING == 1 ]]; then
    printf 'quickstart: what did start is left running for inspection; clean up with: %s stop\n' "$0" >&2
  fi
  exit 1
}

# shellcheck source=scripts/packages.sh
source "$REPO/scripts/packages.sh"

build() {
  cd "$REPO"
  if [[ ! -f build/build.ninja ]]; then
    say "meson setup build"
    meson setup build
  fi
  say "ninja -C build"
  ninja -C build
  [[ -x $PGREGION_BIN ]] || die "build finished but $PGREGION_BIN is missing"
}

port_free() {
  "$PYTHON" -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

json_get() {
  "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

stop_pgregion() {
  [[ -f $PIDFILE ]] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  # Only signal the process if it is still our pgregion (the pid may be reused).
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
    [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$PGREGION_BIN")" ]]; then
    say "stopping pgregion (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$PIDFILE"
}

stop_cluster() {
  [[ -d $CLUSTER_DIR ]] || return 0
  say "stopping the cluster"
  timeout 120 "$PYTHON" "$HARNESS" down --dir "$CLUSTER_DIR" || say "cluster down reported an error"
}

# As root the servers run as the postgres OS user, which must be able to reach
# the data directories: a clone under /root is not reachable, so the cluster then
# goes to a fixed directory under /tmp.
pick_cluster_dir() {
  CLUSTER_DIR=$STATE/cluster
  if [[ $(id -u) == 0 ]] && ! runuser -u postgres -- test -x "$STATE" 2>/dev/null; then
    CLUSTER_DIR=/tmp/pgregion-quickstart-cluster
  fi
  echo "$CLUSTER_DIR" >"$STATE/cluster.path"
}

cmd_stop() {
  stop_pgregion
  stop_cluster
  say "stopped"
}

cmd_status() {
  if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "pgregion: running (pid $(cat "$PIDFILE")), config $CONFIG, log $LOGFILE"
  else
    echo "pgregion: not running"
  fi
  if [[ -f $CLUSTER_DIR/cluster.json ]]; then
    echo "cluster: $CLUSTER_DIR/cluster.json"
  else
    echo "cluster: not started"
  fi
}

wait_ready() { # wait_ready PORT [PID]
  local port=$1 pid=${2:-} i
  for ((i = 0; i < 100; i++)); do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOGFILE" >&2 || true
      die "pgregion exited during startup (log: $LOGFILE)"
    fi
    if PGPASSWORD=$APP_PASSWORD PGCONNECT_TIMEOUT=2 psql -X -q -h 127.0.0.1 -p "$port" -U "$APP_USER" \
      -d "$APP_DB" -Atc 'SELECT 1' >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  die "nothing answers on 127.0.0.1:$port after 20 s"
}

cmd_start() {
  [[ -r /etc/debian_version ]] || say "warning: not Debian; the apt step may not work"
  if [[ ${SKIP_INSTALL:-0} != 1 ]]; then install_missing; fi
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then build; fi
  [[ -x $PGREGION_BIN ]] || die "$PGREGION_BIN not found (build first)"

  # Idempotent: whatever a previous run left is stopped first.
  stop_pgregion
  stop_cluster
  mkdir -p "$STATE"
  pick_cluster_dir
  STARTING=1

  say "starting PostgreSQL 15: primary + 1 streaming replica"
  timeout 300 "$PYTHON" "$HARNESS" up --dir "$CLUSTER_DIR" --replicas 1 --auth scram-sha-256 \
    >"$STATE/cluster.log" 2>&1 || { tail -n 30 "$STATE/cluster.log" >&2; die "cluster up failed (log: $STATE/cluster.log)"; }
  local cj=$CLUSTER_DIR/cluster.json
  local pg_host pg_port replica_port
  pg_host=$(json_get "$cj" 'd["primary"]["host"]')
  pg_port=$(json_get "$cj" 'd["primary"]["port"]')
  replica_port=$(json_get "$cj" 'd["replicas"][0]["port"]')

  local port=${PGREGION_PORT:-6432}
  if ! port_free "$port"; then
    [[ -n ${PGREGION_PORT:-} ]] && die "port $port is taken"
    port=$(free_port)
    say "port 6432 is taken; pgregion listens on $port instead"
  fi

  cat >"$CONFIG" <<EOF
# Written by scripts/quickstart.sh; see conf/pgregion.toml and the README for every key.
[proxy]
listen = "127.0.0.1:$port"
region = "local"

[[users]]
name = "$APP_USER"
password = "$APP_PASSWORD"
auth = "scram-sha-256"

[pool]
mode = "transaction"
size = 20

[log]
level = "info"

[[nodes]]
name = "primary"
region = "local"
host = "$pg_host"
port = $pg_port

[[nodes]]
name = "replica1"
region = "local"
host = "$pg_host"
port = $replica_port
EOF
  "$PGREGION_BIN" --check "$CONFIG" || die "pgregion --check rejected $CONFIG"

  say "starting pgregion on 127.0.0.1:$port"
  : >"$LOGFILE"
  nohup "$PGREGION_BIN" --config "$CONFIG" >>"$LOGFILE" 2>&1 </dev/null &
  local pid=$!
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$PIDFILE"
  wait_ready "$port" "$pid"

  say "pgbench -i -s 1 through pgregion"
  PGPASSWORD=$APP_PASSWORD pgbench -i -s 1 -q -h 127.0.0.1 -p "$port" -U "$APP_USER" "$APP_DB" \
    >"$STATE/pgbench_init.log" 2>&1 || { tail -n 20 "$STATE/pgbench_init.log" >&2; die "pgbench -i failed"; }
  say "pgbench -c 4 -j 2 -T 5 through pgregion"
  PGPASSWORD=$APP_PASSWORD timeout 60 pgbench -c 4 -j 2 -T 5 -h 127.0.0.1 -p "$port" -U "$APP_USER" "$APP_DB" \
    >"$STATE/pgbench.log" 2>&1 || { tail -n 20 "$STATE/pgbench.log" >&2; die "pgbench failed"; }
  local tps failed
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$STATE/pgbench.log")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$STATE/pgbench.log")

  cat <<EOF

  pgregion is running.

    DATABASE_URL=postgres://$APP_USER:$APP_PASSWORD@127.0.0.1:$port/$APP_DB

    try:   psql "postgres://$APP_USER:$APP_PASSWORD@127.0.0.1:$port/$APP_DB"
    nodes: primary 127.0.0.1:$pg_port, replica 127.0.0.1:$replica_port (PostgreSQL 15)
    pgbench -c 4 -T 5 through pgregion: $(printf "%.0f" "${tps:-0}") tps, ${failed:-0} failed transactions

    config  $CONFIG
    log     $LOGFILE
    pid     $(cat "$PIDFILE")
    state   $STATE

    stop everything:  $REPO/scripts/quickstart.sh stop
EOF
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
  *) die "unknown command '$1' (start | stop | status)" ;;
esac
