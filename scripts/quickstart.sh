#!/usr/bin/env bash
# pgregion quickstart: on Debian 12, installs what is missing (apt), builds, and
# starts three simulated regions on this machine:
#
#   us-east   the PostgreSQL 15 primary, behind a WAN-link relay adding 40 ms each way
#   eu-west   a streaming replica at 0 ms, and pgregion as the eu-west instance
#   ap-south  a streaming replica behind a relay adding 90 ms each way
#
# The replicas stream WAL through relays too (eu-west <- us-east 40 ms,
# ap-south <- us-east 100 ms), so replication lag is real. pgregion runs
# conf/three-region.toml. The quickstart then runs a short mixed pgbench
# through pgregion and prints how many transactions each node served, the
# measured RTT to each node, and the read latency through pgregion versus the
# local replica directly. It leaves everything running and prints the
# DATABASE_URL.
#
#   scripts/quickstart.sh          start (or restart: stops a previous run first)
#   scripts/quickstart.sh stop     stop pgregion, the relays and the cluster
#   scripts/quickstart.sh status   show what is running
#
# Environment: QUICKSTART_DIR (state dir, default .tmp/quickstart in the repo),
# PGREGION_PORT (default 6432, or a free port if 6432 is taken), RELAY_PORTS
# (default "6501 6502 6503": the us-east, eu-west and ap-south relays; a taken
# port is replaced by a free one), QUICKSTART_CLIENTS (the mixed pgbench's
# clients, default 8), SKIP_INSTALL=1 (do not touch apt), SKIP_BUILD=1 (use the
# existing build).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${QUICKSTART_DIR:-$REPO/.tmp/quickstart}
PYTHON=/usr/bin/python3
HARNESS=$REPO/tests/harness/cluster.py
WANLINK=$REPO/tests/harness/wanlink.py
PGREGION_BIN=$REPO/build/proxy/pgregion
PIDFILE=$STATE/pgregion.pid
LOGFILE=$STATE/pgregion.log
CONFIG=$STATE/pgregion.toml
RELAYS=$STATE/relays # one "PID NAME" line per relay process
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
  [[ -x $REPO/build/tests/wanlink/wanlink ]] || die "build finished but the WAN-link relay is missing"
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

# Our relay wrapper with this pid is still running (the pid may have been reused).
our_relay() {
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$WANLINK"
}

stop_relays() {
  [[ -f $RELAYS ]] || return 0
  say "stopping the WAN-link relays"
  local pid name i alive
  while read -r pid name; do
    if our_relay "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done <"$RELAYS"
  for ((i = 0; i < 100; i++)); do
    alive=0
    while read -r pid name; do
      if our_relay "$pid"; then alive=1; fi
    done <"$RELAYS"
    ((alive)) || break
    sleep 0.1
  done
  rm -f "$RELAYS"
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
  stop_relays
  stop_cluster
  say "stopped"
}

cmd_status() {
  if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "pgregion: running (pid $(cat "$PIDFILE")), config $CONFIG, log $LOGFILE"
  else
    echo "pgregion: not running"
  fi
  if [[ -f $RELAYS ]]; then
    echo "relays: $(awk '{printf "%s ", $2}' "$RELAYS")(pids in $RELAYS)"
  else
    echo "relays: not running"
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

# start_relay NAME TARGET_PORT DELAY_MS LISTEN_PORT: a WAN-link relay left
# running in the background (LISTEN_PORT 0: any free port). Sets RELAY_PORT.
start_relay() {
  local name=$1 target=$2 delay=$3 listen=$4 out=$STATE/relay-$1.out i line pid
  : >"$out"
  nohup "$PYTHON" "$WANLINK" --target-port "$target" --delay-ms "$delay" --listen-port "$listen" \
    >"$out" 2>&1 </dev/null &
  pid=$!
  disown "$pid" 2>/dev/null || true
  echo "$pid $name" >>"$RELAYS"
  for ((i = 0; i < 100; i++)); do
    line=$(grep -m1 '^listen=' "$out" || true)
    if [[ -n $line ]]; then
      line=${line%% *}
      RELAY_PORT=${line##*:}
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$out" >&2
  die "relay $name did not start (log: $out)"
}

# SQL as the superuser over the cluster's Unix socket (no relay in the way), in
# the postgres database so it does not count in $APP_DB's statistics.
node_sql() { # node_sql PORT SQL
  psql -X -Atq -h "$SOCKET_DIR" -p "$1" -U postgres -d postgres -c "$2"
}

xact_commits() { # xact_commits PORT: transactions committed in appdb so far
  node_sql "$1" "select xact_commit from pg_stat_database where datname = '$APP_DB'"
}

# Until both replicas have replayed what the primary has written (bounded).
wait_replay() {
  local lsn r i
  lsn=$(node_sql "$PRIMARY_PORT" "select pg_current_wal_insert_lsn()")
  for r in "$EU_PORT" "$AP_PORT"; do
    for ((i = 0; i < 300; i++)); do
      [[ $(node_sql "$r" "select pg_last_wal_replay_lsn() >= '$lsn'") == t ]] && break
      sleep 0.1
    done
  done
}

pgbench_at() { # pgbench_at PORT LOG ARGS...: pgbench as the app user
  local port=$1 log=$2
  shift 2
  PGPASSWORD=$APP_PASSWORD timeout 120 pgbench -h 127.0.0.1 -p "$port" -U "$APP_USER" "$@" "$APP_DB" \
    >"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    die "pgbench $* failed (log: $log)"
  }
}

# The sum of a metric's samples on pgregion's /metrics whose labels contain
# MATCH (empty when the admin endpoint cannot be read).
metrics_to() { # metrics_to FILE: pgregion's /metrics now
  local addr
  addr=$(sed -n '/^\[admin\]/,/^\[/s/^listen = "\(.*\)"/\1/p' "$CONFIG" | head -n1)
  : >"$1"
  [[ -n $addr ]] || return 0
  timeout 10 "$PYTHON" -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode())' \
    "$addr" >"$1" 2>/dev/null || true
}

# What the reads right after their session's own write did between two
# /metrics snapshots: where they ran (pgregion_reads_after_write_total), how
# long those that waited for eu-west to replay the write waited
# (pgregion_ryw_wait_seconds, p50/p99 interpolated within the histogram's
# buckets, as Prometheus' histogram_quantile does) and why any went to the
# primary (pgregion_ryw_fallbacks_total). Prints the report's lines.
ryw_report() { # ryw_report BEFORE AFTER
  "$PYTHON" - "$REPO/bench" "$1" "$2" <<'PY' 2>/dev/null || echo "    (no metrics)"
import sys
sys.path.insert(0, sys.argv[1])
import metrics_delta as md
d = md.Delta(sys.argv[2], sys.argv[3])
served = d.by_label("pgregion_reads_after_write_total", "served")
total = sum(served.values())
local = served.get("local_replica", 0)
waits = d.histogram_count("pgregion_ryw_wait_seconds")
quantile = lambda q: d.quantile("pgregion_ryw_wait_seconds", q)
fb = {r: int(v) for r, v in d.by_label("pgregion_ryw_fallbacks_total", "reason").items() if v > 0}
if total == 0:
    print("    no read followed its session's own write")
    sys.exit()
print(f"    reads right after their session's own write: {int(total)}, "
      f"{100 * local / total:.1f}% served by eu-west "
      f"({int(local)} local, {int(served.get('remote_replica', 0))} on ap-south, "
      f"{int(served.get('primary', 0))} on the primary)")
if waits:
    p50, p99 = quantile(0.5), quantile(0.99)
    print(f"    {int(waits)} of them waited for eu-west to replay the write: "
          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms (pgregion_ryw_wait_seconds)")
if fb:
    print("    sent to the primary instead: "
          + ", ".join(f"{n} {r}" for r, n in sorted(fb.items()))
          + " (pgregion_ryw_fallbacks_total)")
PY
}

# The transactions one builtin script ran, from pgbench's per-script report.
script_count() { # script_count LOG PATTERN
  awk -v pat="$2" 'index($0, pat) {f = 1; next} f && / - [0-9]+ transactions/ {print $2; exit}' "$1"
}

# RTT to each node over the path pgregion uses (through its relay): the median
# of 7 `SELECT 1` round trips on one connection, in ms. In the postgres
# database, so it does not count in $APP_DB's statistics.
measure_rtts() { # measure_rtts PORT...
  "$PYTHON" - "$APP_USER" "$APP_PASSWORD" "$@" <<'PY'
import statistics, sys, time
import psycopg
user, password, *ports = sys.argv[1:]
out = []
for port in ports:
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=user, password=password,
                             dbname="postgres", connect_timeout=10, autocommit=True) as c:
            samples = []
            for _ in range(7):
                t = time.perf_counter()
                c.execute("select 1").fetchone()
                samples.append((time.perf_counter() - t) * 1000)
        out.append(f"{statistics.median(samples):.1f}")
    except Exception:  # noqa: BLE001 - printed as unknown
        out.append("?")
print(" ".join(out))
PY
}

# What pgregion's first probe of a node measured (its log, event=node_up).
probe_rtt() { sed -n "s/.*event=node_up node=$1 .*rtt_ms=\([0-9.]*\).*/\1/p" "$LOGFILE" | head -n1; }

cmd_start() {
  [[ -r /etc/debian_version ]] || say "warning: not Debian; the apt step may not work"
  if [[ ${SKIP_INSTALL:-0} != 1 ]]; then install_missing; fi
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then build; fi
  [[ -x $PGREGION_BIN ]] || die "$PGREGION_BIN not found (build first)"

  # Idempotent: whatever a previous run left is stopped first.
  stop_pgregion
  stop_relays
  stop_cluster
  mkdir -p "$STATE"
  pick_cluster_dir
  STARTING=1
  local t0=$SECONDS i

  say "starting PostgreSQL 15: a primary (us-east) and 2 streaming replicas (eu-west, ap-south)"
  # synchronous_commit on, PostgreSQL's default (the test harness turns it
  # off for speed): a commit is flushed before it is acknowledged.
  timeout 300 "$PYTHON" "$HARNESS" up --dir "$CLUSTER_DIR" --replicas 2 --auth scram-sha-256 \
    --conf synchronous_commit=on >"$STATE/cluster.log" 2>&1 || {
    tail -n 30 "$STATE/cluster.log" >&2
    die "cluster up failed (log: $STATE/cluster.log)"
  }
  local cj=$CLUSTER_DIR/cluster.json
  PRIMARY_PORT=$(json_get "$cj" 'd["primary"]["port"]')
  EU_PORT=$(json_get "$cj" 'd["replicas"][0]["port"]')
  AP_PORT=$(json_get "$cj" 'd["replicas"][1]["port"]')
  SOCKET_DIR=$(json_get "$cj" 'd["socket_dir"]')

  # The relays pgregion reaches the nodes through: conf/three-region.toml's ports.
  local want ports=()
  read -r -a want <<<"${RELAY_PORTS:-6501 6502 6503}"
  for i in 0 1 2; do
    if port_free "${want[$i]}"; then ports+=("${want[$i]}"); else ports+=(0); fi
  done
  say "starting WAN-link relays from eu-west: us-east +40 ms, eu-west +0 ms, ap-south +90 ms (each way)"
  local us_relay eu_relay ap_relay wal_ap_relay
  start_relay us-east "$PRIMARY_PORT" 40 "${ports[0]}"
  us_relay=$RELAY_PORT
  start_relay eu-west "$EU_PORT" 0 "${ports[1]}"
  eu_relay=$RELAY_PORT
  start_relay ap-south "$AP_PORT" 90 "${ports[2]}"
  ap_relay=$RELAY_PORT
  start_relay wal-us-east-to-ap-south "$PRIMARY_PORT" 100 0
  wal_ap_relay=$RELAY_PORT
  say "replicas stream WAL through relays (eu-west <- us-east 40 ms, ap-south <- us-east 100 ms)"
  timeout 120 "$PYTHON" "$HARNESS" stream-from --dir "$CLUSTER_DIR" --replica replica1 \
    --port "$us_relay" >>"$STATE/cluster.log" 2>&1 ||
    die "replica1 does not stream through its relay (log: $STATE/cluster.log)"
  timeout 120 "$PYTHON" "$HARNESS" stream-from --dir "$CLUSTER_DIR" --replica replica2 \
    --port "$wal_ap_relay" >>"$STATE/cluster.log" 2>&1 ||
    die "replica2 does not stream through its relay (log: $STATE/cluster.log)"

  local port=${PGREGION_PORT:-6432}
  if ! port_free "$port"; then
    [[ -n ${PGREGION_PORT:-} ]] && die "port $port is taken"
    port=$(free_port)
    say "port 6432 is taken; pgregion listens on $port instead"
  fi
  # conf/three-region.toml as it is, with the ports actually in use.
  sed -e "s/^listen = \"127.0.0.1:6432\"/listen = \"127.0.0.1:$port\"/" \
    -e "s/^port = 6501$/port = $us_relay/" -e "s/^port = 6502$/port = $eu_relay/" \
    -e "s/^port = 6503$/port = $ap_relay/" "$REPO/conf/three-region.toml" >"$CONFIG"
  "$PGREGION_BIN" --check "$CONFIG" >/dev/null || die "pgregion --check rejected $CONFIG"

  say "starting pgregion, the eu-west instance, on 127.0.0.1:$port (conf/three-region.toml)"
  : >"$LOGFILE"
  nohup "$PGREGION_BIN" --config "$CONFIG" >>"$LOGFILE" 2>&1 </dev/null &
  local pid=$!
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$PIDFILE"
  wait_ready "$port" "$pid"
  for ((i = 0; i < 100; i++)); do
    if [[ $(grep -c 'event=node_up ' "$LOGFILE") -ge 3 ]] &&
      grep -q 'event=roles_discovered' "$LOGFILE"; then break; fi
    sleep 0.2
  done

  # Directly at the primary: sessions through pgregion would leave statistics
  # pending in pooled backends and blur the counts below.
  say "pgbench -i -s 1 at the primary"
  pgbench_at "$PRIMARY_PORT" "$STATE/pgbench_init.log" -i -s 1 -q
  wait_replay

  local b_us b_eu b_ap
  b_us=$(xact_commits "$PRIMARY_PORT")
  b_eu=$(xact_commits "$EU_PORT")
  b_ap=$(xact_commits "$AP_PORT")
  local clients=${QUICKSTART_CLIENTS:-8}
  metrics_to "$STATE/metrics_before_mixed.txt"
  say "mixed pgbench through pgregion: -c $clients -T 10, select-only@9 + tpcb-like@1"
  pgbench_at "$port" "$STATE/pgbench.log" -n -c "$clients" -j 2 -T 10 \
    -b select-only@9 -b tpcb-like@1
  local t_mixed=$SECONDS
  metrics_to "$STATE/metrics_after_mixed.txt"
  local rtt_us rtt_eu rtt_ap
  read -r rtt_us rtt_eu rtt_ap <<<"$(measure_rtts "$us_relay" "$eu_relay" "$ap_relay")"
  # A backend that stays connected (pgregion's pooled ones) publishes its
  # statistics at most 10 s after it goes idle (PostgreSQL's PGSTAT_IDLE_INTERVAL).
  say "waiting for PostgreSQL to publish the pooled backends' statistics (10 s)"
  while ((SECONDS - t_mixed < 11)); do sleep 0.5; done
  local d_us d_eu d_ap
  d_us=$(($(xact_commits "$PRIMARY_PORT") - b_us))
  d_eu=$(($(xact_commits "$EU_PORT") - b_eu))
  d_ap=$(($(xact_commits "$AP_PORT") - b_ap))
  local reads writes failed share="?"
  reads=$(script_count "$STATE/pgbench.log" "<builtin: select only>")
  writes=$(script_count "$STATE/pgbench.log" "<builtin: TPC-B")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$STATE/pgbench.log")
  if [[ -n $reads && $reads -gt 0 ]]; then
    share=$((100 * d_eu / reads))
    ((share > 100)) && share=100
  fi

  # The reads right after their session's own write (read-your-writes).
  local ryw_note
  ryw_note=$(ryw_report "$STATE/metrics_before_mixed.txt" "$STATE/metrics_after_mixed.txt")

  # A tenant routed to another region than the proxy's (conf/three-region.toml [[tenants]]).
  say "tenant acme-ap: 5 reads after SET app.tenant_id = 'acme-ap' through pgregion"
  metrics_to "$STATE/metrics_before_tenant.txt"
  local tenant_ms
  tenant_ms=$("$PYTHON" - "$port" "$APP_USER" "$APP_PASSWORD" "$APP_DB" <<'PY' 2>/dev/null || echo "?"
import subprocess, sys, time
port, user, password, db = sys.argv[1:5]
sql = ["SET app.tenant_id = 'acme-ap'"] + ["SELECT count(*) FROM pgbench_branches"] * 5
args = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", port, "-U", user, "-d", db]
for s in sql:
    args += ["-c", s]
t0 = time.monotonic()
subprocess.run(args, check=True, capture_output=True, timeout=60,
               env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"})
print("%.0f" % ((time.monotonic() - t0) * 1000))
PY
)
  metrics_to "$STATE/metrics_after_tenant.txt"
  local tenant_note
  tenant_note=$("$PYTHON" - "$REPO/bench" "$STATE/metrics_before_tenant.txt" \
    "$STATE/metrics_after_tenant.txt" <<'PY' 2>/dev/null || echo "(no metrics)"
import sys
sys.path.insert(0, sys.argv[1])
import metrics_delta as md
d = md.Delta(sys.argv[2], sys.argv[3])
served = {r: int(v) for r, v in d.by_label("pgregion_tenant_reads_total", "served_region").items()
          if v > 0}
print(", ".join(f"{n} served by {r}" for r, n in sorted(served.items())) or "none counted")
PY
)

  say "read latency: pgbench -S -c 4 -T 5 through pgregion, then at the eu-west replica directly"
  pgbench_at "$port" "$STATE/pgbench_S_pgregion.log" -n -S -c 4 -j 2 -T 5
  pgbench_at "$EU_PORT" "$STATE/pgbench_S_direct.log" -n -S -c 4 -j 2 -T 5
  local lat_proxy lat_direct tps_proxy tps_direct
  lat_proxy=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$STATE/pgbench_S_pgregion.log")
  lat_direct=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$STATE/pgbench_S_direct.log")
  tps_proxy=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$STATE/pgbench_S_pgregion.log")
  tps_direct=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$STATE/pgbench_S_direct.log")

  cat <<EOF

  pgregion is running: the eu-west instance of a three-region cluster (conf/three-region.toml).

    DATABASE_URL=postgres://$APP_USER:$APP_PASSWORD@127.0.0.1:$port/$APP_DB

    try:   psql "postgres://$APP_USER:$APP_PASSWORD@127.0.0.1:$port/$APP_DB"

  node          region     role      address           RTT (SELECT 1)  RTT (pgregion's first probe)
  pg-us-east    us-east    primary   127.0.0.1:$(printf '%-5s' "$us_relay")   $(printf '%8s' "$rtt_us") ms     $(printf '%8s' "$(probe_rtt pg-us-east)") ms
  pg-eu-west    eu-west    replica   127.0.0.1:$(printf '%-5s' "$eu_relay")   $(printf '%8s' "$rtt_eu") ms     $(printf '%8s' "$(probe_rtt pg-eu-west)") ms
  pg-ap-south   ap-south   replica   127.0.0.1:$(printf '%-5s' "$ap_relay")   $(printf '%8s' "$rtt_ap") ms     $(printf '%8s' "$(probe_rtt pg-ap-south)") ms

  mixed pgbench through pgregion (-c $clients -T 10): ${reads:-?} select-only and ${writes:-?} tpcb-like transactions, ${failed:-0} failed.
  Transactions each node committed meanwhile (pg_stat_database.xact_commit of $APP_DB, probes excluded):
    pg-us-east   $(printf '%7s' "$d_us")  the tpcb-like transactions: 7 statements each, all on the primary
    pg-eu-west   $(printf '%7s' "$d_eu")  the select-only reads, 1 statement each: ${share}% of the reads stayed in eu-west
    pg-ap-south  $(printf '%7s' "$d_ap")  farther away: reads go there only when eu-west cannot serve them
    (a node also counts pgregion's own transactions: the setting replays on each new server
     connection, and on the primary the three FunctionCalls of the read-your-writes LSN probe
     after each write transaction, each its own transaction)

  Read-your-writes (causal consistency):
${ryw_note}

  Tenants (conf/three-region.toml [[tenants]]): one psql session, SET app.tenant_id = 'acme-ap'
  and 5 reads: ${tenant_note} (pgregion_tenant_reads_total; the SET counts too)
    acme-ap prefers ap-south: its statements run there, not in the proxy's own eu-west,
    ${tenant_ms} ms for the whole psql run (login included; ap-south is 180 ms away)

  read latency, pgbench -S -c 4 -T 5:
    through pgregion              ${lat_proxy:-?} ms average, $(printf "%.0f" "${tps_proxy:-0}") tps
    eu-west replica directly      ${lat_direct:-?} ms average, $(printf "%.0f" "${tps_direct:-0}") tps

    config  $CONFIG
    log     $LOGFILE
    pid     $(cat "$PIDFILE")
    state   $STATE
    took    $((SECONDS - t0)) s (after the build)

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
