# shellcheck shell=bash
# shellcheck disable=SC2034  # variables set here are read by the scripts that source this file
# Shared by bench/run_bench.sh and bench/idle_memory.sh (sourced, not run).
#
# Starts a test cluster (tests/harness/cluster.py), PgBouncer and pgregion on
# free loopback ports, all under one work directory, and registers one cleanup
# that stops everything it started. Every wait is bounded by a count.
#
# Inputs (environment, all optional):
#   PGREGION_BIN   pgregion binary          (default: build/proxy/pgregion)
#   IDLE_CLIENTS_BIN idle_clients binary    (default: build/bench/idle_clients,
#                                            else compiled into the work dir)
#   PYTHON         python with psycopg      (default: /usr/bin/python3)
#   REPLICAS       streaming replicas       (default: 0)
#   AUTH           client auth method for direct Postgres, PgBouncer and
#                  pgregion alike: scram-sha-256 | md5  (default: scram-sha-256)
#   POOL_SIZE      server connections per pool, both proxies (default: 20)
#   BENCH_WORK     work directory (default: a new /tmp/pgregion-bench.XXXXXX)
#   KEEP_WORK=1    keep the work directory (logs, configs) after the run

set -euo pipefail

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
PGREGION_BIN=${PGREGION_BIN:-$BENCH_REPO/build/proxy/pgregion}
IDLE_CLIENTS_BIN=${IDLE_CLIENTS_BIN:-$BENCH_REPO/build/bench/idle_clients}
REPLICAS=${REPLICAS:-0}
AUTH=${AUTH:-scram-sha-256}
POOL_SIZE=${POOL_SIZE:-20}
MAX_CLIENTS=${MAX_CLIENTS:-3000}   # max_client_conn / max_client_connections
APP_USER=app
APP_PASSWORD=secret
APP_DB=appdb

PIDS_TO_STOP=()  # long-lived: the proxies, alive until cleanup
CURRENT_CHILD="" # the one transient child running now (pgbench, idle_clients)
IDLE_FAILED=0 # set by measure_idle
CLUSTER_UP=0
BENCH_WORK_CREATED=0

# Progress goes to fd 3, a copy of the original stderr, so that it still reaches
# the terminal from inside a redirected block (e.g. the cleanup trap firing there).
exec 3>&2
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&3; }
die() { log "ERROR: $*"; exit 1; }

bench_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  local pid
  if [[ -n $CURRENT_CHILD ]] && kill -0 "$CURRENT_CHILD" 2>/dev/null; then
    kill -TERM "$CURRENT_CHILD" 2>/dev/null
    wait "$CURRENT_CHILD" 2>/dev/null
  fi
  for pid in "${PIDS_TO_STOP[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
    fi
  done
  for pid in "${PIDS_TO_STOP[@]}"; do
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  if [[ $CLUSTER_UP == 1 ]]; then
    log "stopping cluster"
    timeout 120 "$PYTHON" "$BENCH_REPO/tests/harness/cluster.py" down --dir "$BENCH_WORK/cluster" \
      >>"$BENCH_WORK/cluster.log" 2>&1 || log "cluster down failed (see $BENCH_WORK/cluster.log)"
  fi
  if [[ $BENCH_WORK_CREATED == 1 && ${KEEP_WORK:-0} != 1 ]]; then
    rm -rf "$BENCH_WORK"
  elif [[ -n ${BENCH_WORK:-} ]]; then
    log "work directory kept: $BENCH_WORK"
  fi
  exit "$rc"
}

bench_init() {
  [[ $(id -u) == 0 ]] || die "run as root (servers are started as the postgres OS user)"
  case "$AUTH" in scram-sha-256 | md5) ;; *) die "AUTH must be scram-sha-256 or md5, not '$AUTH'" ;; esac
  [[ -f $BENCH_REPO/tests/harness/cluster.py ]] || die "tests/harness/cluster.py not found"
  command -v pgbench >/dev/null || die "pgbench not found (apt-get install postgresql-client)"
  command -v pgbouncer >/dev/null || die "pgbouncer not found (apt-get install pgbouncer)"
  if [[ ! -x $PGREGION_BIN ]]; then
    die "pgregion binary not found at $PGREGION_BIN (build it: meson setup build && ninja -C build; or set PGREGION_BIN)"
  fi
  # 2,000 idle clients need 2,000+ descriptors in each proxy and in the client.
  local want=$((MAX_CLIENTS + 1000))
  if (($(ulimit -n) < want)); then
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  fi
  (($(ulimit -n) >= MAX_CLIENTS + 100)) || die "ulimit -n is $(ulimit -n); need $((MAX_CLIENTS + 100))+ (raise the hard limit)"

  if [[ -z ${BENCH_WORK:-} ]]; then
    BENCH_WORK=$(mktemp -d /tmp/pgregion-bench.XXXXXX)
    BENCH_WORK_CREATED=1
  fi
  mkdir -p "$BENCH_WORK"
  chmod 755 "$BENCH_WORK"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  BENCH_LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
  log "work directory: $BENCH_WORK (load average $BENCH_LOADAVG)"
}

# run_child LOGFILE CMD...: runs CMD as a background child with its output in
# LOGFILE and waits for it. Bash runs a trap only after a foreground command
# ends, but interrupts `wait` at once, so Ctrl-C or SIGTERM cleans up without
# waiting for a 15-second pgbench. (Redirect inside, not on the call: a trap that
# fires in here would otherwise write its messages into LOGFILE.)
run_child() {
  local logfile=$1
  shift
  "$@" >"$logfile" 2>&1 &
  CURRENT_CHILD=$!
  local rc=0
  wait "$CURRENT_CHILD" || rc=$?
  CURRENT_CHILD=""
  return "$rc"
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until a query through host:port succeeds as the app user (bounded).
wait_ready() {
  local name=$1 port=$2 pid=${3:-} logfile=${4:-}
  local i
  for ((i = 0; i < 100; i++)); do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      [[ -n $logfile ]] && tail -n 20 "$logfile" >&2
      die "$name exited during startup"
    fi
    if PGPASSWORD=$APP_PASSWORD PGCONNECT_TIMEOUT=2 psql -X -q -h 127.0.0.1 -p "$port" -U "$APP_USER" \
      -d "$APP_DB" -Atc 'SELECT 1' >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  [[ -n $logfile ]] && tail -n 20 "$logfile" >&2
  die "$name not ready on port $port after 20 s"
}

json_get() { # json_get FILE PYTHON-EXPR-ON-d
  "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

start_cluster() {
  log "starting cluster: primary + $REPLICAS replica(s), auth $AUTH"
  CLUSTER_UP=1 # so cleanup runs "down" even if "up" fails half way
  timeout 300 "$PYTHON" "$BENCH_REPO/tests/harness/cluster.py" up --dir "$BENCH_WORK/cluster" \
    --replicas "$REPLICAS" --auth "$AUTH" >>"$BENCH_WORK/cluster.log" 2>&1 ||
    { tail -n 30 "$BENCH_WORK/cluster.log" >&2; die "cluster up failed"; }
  local cj=$BENCH_WORK/cluster/cluster.json
  PG_HOST=$(json_get "$cj" 'd["primary"]["host"]')
  PG_PORT=$(json_get "$cj" 'd["primary"]["port"]')
  PG_SUPERUSER=$(json_get "$cj" 'd["superuser"]')
  PG_SUPERPASS=$(json_get "$cj" 'd["superuser_password"]')
  REPLICA_PORTS=$(json_get "$cj" '" ".join(str(r["port"]) for r in d["replicas"])')
  log "primary on $PG_HOST:$PG_PORT${REPLICA_PORTS:+, replicas on $REPLICA_PORTS}"
  wait_ready postgres "$PG_PORT"
}

start_pgbouncer() {
  local dir=$BENCH_WORK/pgbouncer
  mkdir -p "$dir"
  PGB_PORT=$(free_port)
  printf '"%s" "%s"\n' "$APP_USER" "$APP_PASSWORD" >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$APP_DB = host=$PG_HOST port=$PG_PORT dbname=$APP_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = $AUTH
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = $MAX_CLIENTS
max_db_connections = 0
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
stats_period = 60
logfile = $dir/pgbouncer.log
pidfile =
EOF
  chown -R postgres: "$dir"
  # setpriv execs pgbouncer directly, so $! is PgBouncer's own pid.
  setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer "$dir/pgbouncer.ini" \
    >>"$dir/stdout.log" 2>&1 &
  PGB_PID=$!
  PIDS_TO_STOP+=("$PGB_PID")
  wait_ready pgbouncer "$PGB_PORT" "$PGB_PID" "$dir/pgbouncer.log"
  log "pgbouncer $(pgbouncer --version | sed -n 1p | awk '{print $2}') on 127.0.0.1:$PGB_PORT (pid $PGB_PID)"
}

# start_pgregion [NAME [EXTRA_TOML]]: NAME (default pgregion) names its work
# directory; EXTRA_TOML is appended to the generated config. Regions: every
# node and the proxy are in "local" unless PGR_PROXY_REGION and
# PGR_NODE_REGIONS (space-separated: the primary's, then each replica's) say
# otherwise.
start_pgregion() {
  local name=${1:-pgregion} extra=${2:-}
  local dir=$BENCH_WORK/$name
  local -a node_regions
  read -ra node_regions <<<"${PGR_NODE_REGIONS:-}"
  mkdir -p "$dir"
  PGR_PORT=$(free_port)
  {
    cat <<EOF
[proxy]
listen = "127.0.0.1:$PGR_PORT"
region = "${PGR_PROXY_REGION:-local}"
max_client_connections = $MAX_CLIENTS

[[users]]
name = "$APP_USER"
password = "$APP_PASSWORD"
auth = "$AUTH"

[pool]
mode = "transaction"
size = $POOL_SIZE

[log]
level = "warn"

[[nodes]]
name = "primary"
region = "${node_regions[0]:-local}"
host = "$PG_HOST"
port = $PG_PORT
EOF
    local n=1 p
    for p in $REPLICA_PORTS; do
      printf '\n[[nodes]]\nname = "replica%d"\nregion = "%s"\nhost = "%s"\nport = %s\n' "$n" \
        "${node_regions[$n]:-local}" "$PG_HOST" "$p"
      n=$((n + 1))
    done
    if [[ -n $extra ]]; then printf '\n%s\n' "$extra"; fi
  } >"$dir/pgregion.toml"
  "$PGREGION_BIN" --check "$dir/pgregion.toml" >"$dir/check.log" 2>&1 ||
    { cat "$dir/check.log" >&2; die "pgregion --check rejected $dir/pgregion.toml"; }
  "$PGREGION_BIN" --config "$dir/pgregion.toml" >>"$dir/pgregion.log" 2>&1 &
  PGR_PID=$!
  PIDS_TO_STOP+=("$PGR_PID")
  wait_ready pgregion "$PGR_PORT" "$PGR_PID" "$dir/pgregion.log"
  log "$("$PGREGION_BIN" --version 2>&1 | sed -n 1p) on 127.0.0.1:$PGR_PORT (pid $PGR_PID)"
}

# Runs SQL on the primary directly as the superuser.
# The three-region setups (ryw_bench.sh, orm_bench.sh): WAN-link relays in front
# of nodes and of their WAL streams.
# start_relay NAME TARGET_PORT DELAY_MS: a WAN-link relay; sets RELAY_PORT.
start_relay() {
  local name=$1 target=$2 delay=$3 out=$BENCH_WORK/relay-$1.out i line
  "$PYTHON" "$BENCH_REPO/tests/harness/wanlink.py" --target-port "$target" --delay-ms "$delay" \
    >"$out" 2>&1 </dev/null &
  PIDS_TO_STOP+=("$!")
  for ((i = 0; i < 100; i++)); do
    line=$(grep -m1 '^listen=' "$out" || true)
    if [[ -n $line ]]; then
      line=${line%% *}
      RELAY_PORT=${line##*:}
      return 0
    fi
    sleep 0.1
  done
  cat "$out" >&2
  die "relay $name did not start"
}

# stream_through REPLICA_NAME RELAY_PORT: the replica's WAL comes through the relay.
stream_through() {
  timeout 120 "$PYTHON" "$BENCH_REPO/tests/harness/cluster.py" stream-from --dir "$BENCH_WORK/cluster" \
    --replica "$1" --port "$2" >>"$BENCH_WORK/cluster.log" 2>&1 ||
    die "$1 did not stream through the relay (see $BENCH_WORK/cluster.log)"
}

psql_super() {
  PGPASSWORD=$PG_SUPERPASS psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" \
    -U "$PG_SUPERUSER" -d "$APP_DB" "$@"
}

ensure_idle_clients_bin() {
  if [[ -x $IDLE_CLIENTS_BIN ]]; then return 0; fi
  IDLE_CLIENTS_BIN=$BENCH_WORK/idle_clients
  log "build/bench/idle_clients not found; compiling it into the work directory"
  # shellcheck disable=SC2046  # pkg-config prints several flags
  g++ -std=c++20 -O2 -Wall -Wextra "$BENCH_REPO/bench/idle_clients.cc" \
    $(pkg-config --cflags --libs libpq) -o "$IDLE_CLIENTS_BIN" ||
    die "could not compile bench/idle_clients.cc"
}

machine_header() {
  local cpu mem pgver pgbver pgrver
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
  pgver=$(psql_super -Atc 'SHOW server_version' 2>/dev/null || echo '?')
  pgbver=$(pgbouncer --version | sed -n 1p | awk '{print $2}')
  pgrver=$("$PGREGION_BIN" --version 2>&1 | sed -n 1p || echo '?')
  # The build type matters (debugoptimized keeps assertions); say which one ran.
  local opts
  opts=$(dirname "$(dirname "$(readlink -f "$PGREGION_BIN")")")/meson-info/intro-buildoptions.json
  if [[ -f $opts ]]; then
    pgrver+=" ($("$PYTHON" -c 'import json,sys
o = {x["name"]: x["value"] for x in json.load(open(sys.argv[1]))}
print("buildtype %s, b_ndebug %s, b_sanitize %s" % (o.get("buildtype"), o.get("b_ndebug"), o.get("b_sanitize")))' "$opts" 2>/dev/null || echo 'build options unknown'))"
  fi
  cat <<EOF
- Date: $(date -u '+%Y-%m-%d %H:%M UTC')
- Machine: $(nproc) CPUs ($cpu), $mem RAM, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")
- PostgreSQL $pgver, $(pgbench --version | sed -n 1p), PgBouncer $pgbver, pgregion: $pgrver
- PostgreSQL settings (test harness): $(psql_super -Atc "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')" 2>/dev/null || echo '?')
- Load average when the run started: $BENCH_LOADAVG (the machine is shared; a high value means noisier numbers)
- Everything on this one machine over loopback TCP (client, proxies, Postgres share the CPUs)
- Client auth: $AUTH for direct Postgres, PgBouncer and pgregion; transaction pooling, pool size $POOL_SIZE in both proxies
EOF
}

# CPU time (user + system, all threads) a process has used, in clock ticks.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# /proc/PID/status VmRSS and /proc/PID/smaps_rollup Pss, in KiB: "RSS PSS".
mem_kib() {
  local pid=$1 rss pss
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")
  echo "$rss $pss"
}

# measure_idle NAME PID PORT COUNT: prints one Markdown row.
measure_idle() {
  local name=$1 pid=$2 port=$3 count=$4
  local ready=$BENCH_WORK/idle_$name.ready out=$BENCH_WORK/idle_$name.out
  rm -f "$ready"
  kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is not running"
  sleep 1
  local before after
  before=$(mem_kib "$pid")
  local conninfo="host=127.0.0.1 port=$port user=$APP_USER password=$APP_PASSWORD dbname=$APP_DB connect_timeout=30"
  "$IDLE_CLIENTS_BIN" --conninfo "$conninfo" -n "$count" --parallel 50 --hold 120 --timeout 120 \
    --ready-file "$ready" >"$out" 2>"$out.err" &
  local ipid=$!
  CURRENT_CHILD=$ipid
  local i
  for ((i = 0; i < 1300; i++)); do # 130 s
    [[ -f $ready ]] && break
    kill -0 "$ipid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -f $ready ]] || { cat "$out" "$out.err" >&2; die "idle_clients against $name did not finish connecting"; }
  sleep 2 # let the proxy settle (buffers, lazy allocations)
  after=$(mem_kib "$pid")
  kill -TERM "$ipid" 2>/dev/null || true
  wait "$ipid" || true
  CURRENT_CHILD=""
  local connected
  connected=$(sed -n 's/^connected=\([0-9]*\).*/\1/p' "$ready")
  local alive
  alive=$(sed -n 's/^alive_after_hold=\([0-9]*\).*/\1/p' "$out")
  if [[ ${connected:-0} != "$count" ]]; then
    log "$name: only ${connected:-0}/$count idle clients connected:"
    head -n 5 "$out.err" >&2
    IDLE_FAILED=1
  fi
  if [[ ${alive:-0} != "${connected:-0}" ]]; then
    log "$name: only ${alive:-0} of ${connected:-0} idle clients stayed connected"
    IDLE_FAILED=1
  fi
  read -r rss0 pss0 <<<"$before"
  read -r rss1 pss1 <<<"$after"
  awk -v n="$name" -v c="${connected:-0}" -v r0="$rss0" -v r1="$rss1" -v p0="$pss0" -v p1="$pss1" 'BEGIN {
    per_r = c > 0 ? (r1 - r0) / c : 0; per_p = c > 0 ? (p1 - p0) / c : 0;
    printf "| %s | %d | %d | %d | %.1f | %d | %d | %.1f |\n", n, c, r0, r1, per_r, p0, p1, per_p }'
}

idle_table_header() {
  echo "| proxy | idle clients | RSS before KiB | RSS after KiB | RSS KiB/client | PSS before KiB | PSS after KiB | PSS KiB/client |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
}
