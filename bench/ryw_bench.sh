#!/usr/bin/env bash
# Read-your-writes benchmark (issues 5 and 19): the three-region setup,
# pgregion in eu-west under each consistency level.
#
#   us-east   the primary, reached by pgregion through a WAN-link relay adding
#             DELAY_MS (40) each way
#   eu-west   pgregion and a streaming replica (reached directly), whose WAL
#             arrives from the primary through a relay with the same delay
#   ap-south  a replica behind FAR_DELAY_MS (90) each way, its WAL through a
#             relay of FAR_DELAY_MS + 10
#
# Commits are synchronous (PostgreSQL's default; the test harness turns
# synchronous_commit off for speed). pgbench runs a mix through pgregion: 10%
# of transactions update a row and read it back (two autocommit statements),
# 90% read a row. For each level (strong, causal, eventual, set with
# PGOPTIONS) it reports TPS, the read-only transactions' latency p50/p99, the
# share of reads eu-west served, the reads right after their session's write
# (where they ran: pgregion_reads_after_write_total, builds that have it), the
# waits (count, p50/p99 from pgregion_ryw_wait_seconds) and fallbacks by
# reason, and what bench/consistency_checker finds: the read-back latency
# p50/p99 of its read-after-write pairs and their stale reads. Then, under
# causal, the quickstart's mix (pgbench's select-only@9 + tpcb-like@1, whose
# 5-statement write transactions among concurrent writers are where a token at
# the WAL insert position made reads wait for other sessions' unflushed WAL).
#
# BUILDS="label=binary ..." runs the same measurements for several builds
# against the same cluster, one after the other (default: one, "pgregion" =
# $PGREGION_BIN): the before/after of a change in one run. Writes the table
# to $BENCH_OUT when set.
#
# Environment (besides bench/lib.sh's): DELAY_MS (40), FAR_DELAY_MS (90),
# CLIENTS (16), THREADS (2), DURATION (20), WARMUP (3), SCALE (10),
# CHECKER_SECONDS (10), CHECKER_CLIENTS (8), CHECKER_BIN
# (build/bench/consistency_checker), BUILDS, BENCH_OUT.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DELAY_MS=${DELAY_MS:-40}
FAR_DELAY_MS=${FAR_DELAY_MS:-90}
CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
SCALE=${SCALE:-10}
CHECKER_SECONDS=${CHECKER_SECONDS:-10}
CHECKER_CLIENTS=${CHECKER_CLIENTS:-8}
CHECKER_BIN=${CHECKER_BIN:-$BENCH_REPO/build/bench/consistency_checker}
LEVELS=(strong causal eventual)
# shellcheck disable=SC2034  # read by bench/lib.sh
REPLICAS=2
read -r -a BUILD_LIST <<<"${BUILDS:-pgregion=$PGREGION_BIN}"
for b in "${BUILD_LIST[@]}"; do [[ -x ${b#*=} ]] || die "no binary at ${b#*=} (BUILDS)"; done

[[ -x $CHECKER_BIN ]] || die "consistency_checker not found at $CHECKER_BIN (ninja -C build)"
bench_init
start_cluster
REPLICA_PORT=${REPLICA_PORTS%% *}
FAR_PORT=${REPLICA_PORTS##* }

log "synchronous_commit = on (the harness default is off)"
psql_super -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null
for port in $REPLICA_PORTS; do
  PGPASSWORD=$PG_SUPERPASS psql -X -q -h "$PG_HOST" -p "$port" -U "$PG_SUPERUSER" -d "$APP_DB" \
    -c "SELECT pg_reload_conf()" >/dev/null
done

start_relay us-east "$PG_PORT" "$DELAY_MS"
US_RELAY=$RELAY_PORT
start_relay ap-south "$FAR_PORT" "$FAR_DELAY_MS"
FAR_RELAY=$RELAY_PORT
start_relay wal-us-east-to-eu-west "$PG_PORT" "$DELAY_MS"
WAL_RELAY=$RELAY_PORT
start_relay wal-us-east-to-ap-south "$PG_PORT" $((FAR_DELAY_MS + 10))
WAL_FAR_RELAY=$RELAY_PORT
log "the replicas stream WAL through relays (eu-west +$DELAY_MS ms, ap-south +$((FAR_DELAY_MS + 10)) ms each way)"
stream_through replica1 "$WAL_RELAY"
stream_through replica2 "$WAL_FAR_RELAY"

# start_pgregion LABEL BINARY: pgregion in eu-west (sets PGR_PID, PGR_DIR).
start_pgregion() {
  local label=$1 bin=$2
  PGR_DIR=$BENCH_WORK/pgregion-$label
  mkdir -p "$PGR_DIR"
  PGR_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  cat >"$PGR_DIR/pgregion.toml" <<EOF
[proxy]
listen = "127.0.0.1:$PGR_PORT"
region = "eu-west"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[users]]
name = "$APP_USER"
password = "$APP_PASSWORD"
auth = "$AUTH"

[pool]
mode = "transaction"
size = $POOL_SIZE

[routing]
consistency = "causal"
# bench/consistency_checker's read-back reports pg_is_in_recovery() to count replica and
# primary reads apart; its answer differs per node, so it must be declared read-only to run
# on a replica at all (without this every read-back goes to the primary).
read_only_functions = ["pg_is_in_recovery"]

[health]
interval_ms = 500
timeout_ms = 1000

[log]
level = "warn"

[[nodes]]
name = "pg-us-east"
region = "us-east"
host = "127.0.0.1"
port = $US_RELAY

[[nodes]]
name = "pg-eu-west"
region = "eu-west"
host = "$PG_HOST"
port = $REPLICA_PORT

[[nodes]]
name = "pg-ap-south"
region = "ap-south"
host = "127.0.0.1"
port = $FAR_RELAY
EOF
  "$bin" --check "$PGR_DIR/pgregion.toml" >"$PGR_DIR/check.log" 2>&1 ||
    { cat "$PGR_DIR/check.log" >&2; die "pgregion --check rejected the config"; }
  "$bin" --config "$PGR_DIR/pgregion.toml" >>"$PGR_DIR/pgregion.log" 2>&1 &
  PGR_PID=$!
  PIDS_TO_STOP+=("$PGR_PID")
  wait_ready pgregion "$PGR_PORT" "$PGR_PID" "$PGR_DIR/pgregion.log"
}

stop_pgregion() {
  kill "$PGR_PID" 2>/dev/null || true
  wait "$PGR_PID" 2>/dev/null || true
}

log "pgbench -i -s $SCALE (directly on the primary)"
PGPASSWORD=$APP_PASSWORD pgbench -i -s "$SCALE" -q -h "$PG_HOST" -p "$PG_PORT" -U "$APP_USER" "$APP_DB" \
  >"$BENCH_WORK/pgbench_init.log" 2>&1 || { tail -n 20 "$BENCH_WORK/pgbench_init.log" >&2; die "pgbench -i failed"; }
psql_super -c 'CHECKPOINT' >/dev/null
for ((i = 0; i < 600; i++)); do
  n=$(PGPASSWORD=$PG_SUPERPASS psql -X -Atq -h "$PG_HOST" -p "$REPLICA_PORT" -U "$PG_SUPERUSER" \
    -d "$APP_DB" -c 'SELECT count(*) FROM pgbench_branches' 2>/dev/null || true)
  [[ $n == "$SCALE" ]] && break
  sleep 0.1
done
[[ $n == "$SCALE" ]] || die "the replica did not replay pgbench -i within 60 s"
sleep 2 # RTTs measured, roles discovered

cat >"$BENCH_WORK/read.sql" <<'EOF'
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
EOF
cat >"$BENCH_WORK/write_read.sql" <<'EOF'
\set aid random(1, 100000 * :scale)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
EOF

metrics() { curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null || "$PYTHON" -c '
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end="")' \
  "http://127.0.0.1:$ADMIN_PORT/metrics"; }

# report BEFORE AFTER: what /metrics says of a level, from two scrapes:
# "eu-west share|reads after write on eu-west|waits|fallbacks".
report() {
  "$PYTHON" - "$BENCH_REPO/bench" "$1" "$2" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import metrics_delta as md
d = md.Delta(sys.argv[2], sys.argv[3])
routed = d.series("pgregion_routed_total")
eu = sum(v for k, v in routed.items() if md.label(k, "node") == "pg-eu-west")
reads = sum(v for k, v in routed.items() if md.label(k, "reason") != "write")
share = "%.1f%%" % (100 * eu / reads) if reads else "-"
aw = d.by_label("pgregion_reads_after_write_total", "served")
n = sum(aw.values())
after = "%.1f%% of %d" % (100 * aw.get("local_replica", 0) / n, n) if n else (
    "0" if aw else "-")
wait = "pgregion_ryw_wait_seconds"
waits = d.histogram_count(wait)
wl = "%d (p50 %.1f / p99 %.1f ms)" % (
    waits, d.quantile(wait, 0.5) * 1000, d.quantile(wait, 0.99) * 1000) if waits else "0"
fallbacks = d.by_label("pgregion_ryw_fallbacks_total", "reason")
fb = ", ".join("%s %d" % (r, v) for r, v in sorted(fallbacks.items()) if v) or "0"
if not aw and waits:
    # A build without pgregion_reads_after_write_total: every read after a write that
    # eu-west had not replayed waits, and the waits that time out go to the primary.
    timeouts = fallbacks.get("wait_timeout", 0)
    after = "~%.1f%% of %d waits" % (100 * (waits - timeouts) / waits, waits)
print("|".join((share, after, wl, fb)))
PY
}

# measure LABEL LEVEL WORKLOAD: one pgbench run through the running pgregion, then (for the
# update-and-read-back workload) the consistency checker; appends a row to ROWS.
#   rw     90% read a row, 10% update a row and read it back (two autocommit statements)
#   mixed  the quickstart's mix: pgbench's select-only@9 and tpcb-like@1 (a transaction of
#          5 statements and concurrent writers: its token is where issue 19 started)
declare -a ROWS
measure() {
  local label=$1 level=$2 workload=$3 scripts
  if [[ $workload == mixed ]]; then
    scripts=(-b select-only@9 -b tpcb-like@1)
  else
    scripts=(-f "$BENCH_WORK/read.sql@9" -f "$BENCH_WORK/write_read.sql@1")
  fi
  local tag=${label}_${level}_$workload
  export PGOPTIONS="-c pgregion.consistency=$level"
  run_child "$BENCH_WORK/warmup_$tag.log" env PGPASSWORD="$APP_PASSWORD" \
    timeout $((WARMUP + 60)) pgbench -n -c "$CLIENTS" -j "$THREADS" -T "$WARMUP" "${scripts[@]}" \
    -h 127.0.0.1 -p "$PGR_PORT" -U "$APP_USER" "$APP_DB" || true
  local m0=$BENCH_WORK/metrics_${tag}_0.txt m1=$BENCH_WORK/metrics_${tag}_1.txt
  metrics >"$m0"
  log "$label: pgbench $workload, consistency $level (${DURATION}s)"
  local out=$BENCH_WORK/run_$tag.log
  rm -f "$BENCH_WORK"/pgbench_log_"$tag"*
  run_child "$out" env PGPASSWORD="$APP_PASSWORD" timeout $((DURATION + 60)) \
    pgbench -n -r -l --log-prefix="$BENCH_WORK/pgbench_log_$tag" -c "$CLIENTS" \
    -j "$THREADS" -T "$DURATION" "${scripts[@]}" \
    -h 127.0.0.1 -p "$PGR_PORT" -U "$APP_USER" "$APP_DB" ||
    die "pgbench failed under $level (see $out)"
  metrics >"$m1"
  unset PGOPTIONS
  local tps nfail lat p50 p99 share after waits fallbacks
  tps=$(sed -n 's/^tps = \([0-9]*\)[0-9.]* (without initial connection time).*/\1/p' "$out")
  nfail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
  [[ -n $tps && ${nfail:-0} == 0 ]] || die "failed transactions under $level (see $out)"
  # Read-only transactions (script 0) from the per-transaction log: latency in µs, column 3.
  lat=$(cat "$BENCH_WORK"/pgbench_log_"$tag"* | awk '$4 == 0 {print $3}' | sort -n | awk '
    {v[NR] = $1} END {if (NR == 0) {print "0 0"; exit}
      p50 = v[int(NR * 0.50) + (NR * 0.50 > int(NR * 0.50))]; p99 = v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))]
      printf "%.2f %.2f", p50 / 1000, p99 / 1000}')
  read -r p50 p99 <<<"$lat"
  IFS='|' read -r share after waits fallbacks <<<"$(report "$m0" "$m1")"
  log "  tps $tps, read p50 $p50 ms p99 $p99 ms, eu-west share $share, reads after write on eu-west $after, waits $waits, fallbacks: $fallbacks"
  local readback=- stale=-
  if [[ $workload == rw ]]; then
    log "$label: consistency_checker, $level (${CHECKER_SECONDS}s, $CHECKER_CLIENTS clients)"
    local checker_out=$BENCH_WORK/checker_$tag.json
    "$CHECKER_BIN" --dsn "host=127.0.0.1 port=$PGR_PORT user=$APP_USER password=$APP_PASSWORD dbname=$APP_DB" \
      --clients "$CHECKER_CLIENTS" --seconds "$CHECKER_SECONDS" --consistency "$level" \
      >"$checker_out" 2>"$BENCH_WORK/checker_$tag.err" ||
      die "consistency_checker failed under $level"
    readback=$(json_get "$checker_out" '"%.1f / %.1f" % (d["read_p50_ms"], d["read_p99_ms"])')
    stale=$(json_get "$checker_out" '"%d of %d (replica served %d)" % (d["stale"], d["reads"], d["replica_reads"])')
    log "  read-back p50/p99 $readback ms, stale reads: $stale"
  fi
  ROWS+=("| $label | $workload | $level | $tps | $p50 / $p99 | $share | $after | $readback | $waits | $fallbacks | $stale |")
}

for build in "${BUILD_LIST[@]}"; do
  label=${build%%=*}
  start_pgregion "$label" "${build#*=}"
  sleep 2 # RTTs measured, roles discovered
  for level in "${LEVELS[@]}"; do measure "$label" "$level" rw; done
  measure "$label" causal mixed
  stop_pgregion
done

REPORT=$BENCH_WORK/ryw_report.md
{
  echo "### Read-your-writes: consistency levels in the three-region setup"
  echo
  machine_header
  echo "- pgregion in eu-west; primary in us-east through a WAN-link relay (+$DELAY_MS ms each way); the eu-west replica reached directly, its WAL through a relay with the same delay; the ap-south replica behind +$FAR_DELAY_MS ms (its WAL +$((FAR_DELAY_MS + 10)) ms); synchronous_commit = on"
  echo "- builds, one after the other against the same cluster: ${BUILD_LIST[*]}"
  echo "- pgbench -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE; workload rw: 90% read a row, 10% update a row and read it back (two autocommit statements); workload mixed: the quickstart's select-only@9 + tpcb-like@1; the level set with PGOPTIONS"
  echo "- reads after write on eu-west: the first read after each writing transaction of a session (pgregion_reads_after_write_total; a build without it: the waits that did not time out, ~); waits: pgregion_ryw_wait_seconds, p50/p99 interpolated within its buckets"
  echo "- consistency_checker: $CHECKER_CLIENTS clients for ${CHECKER_SECONDS}s, each writing a row and reading it back at once on the same connection; read-back p50/p99 is the latency of those reads"
  echo
  echo "| build | workload | level | TPS | read-only p50 / p99 ms | reads on eu-west | reads after write on eu-west | checker read-back p50 / p99 ms | waits | fallbacks | checker: stale of read-after-write pairs |"
  echo "|---|---|---|---:|---:|---:|---:|---:|---|---|---|"
  for row in "${ROWS[@]}"; do echo "$row"; done
} >"$REPORT"
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
