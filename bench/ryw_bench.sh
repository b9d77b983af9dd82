#!/usr/bin/env bash
# Read-your-writes benchmark (issue 5): one run in the three-region setup,
# pgregion in eu-west under each consistency level.
#
#   us-east   the primary, reached by pgregion through a WAN-link relay adding
#             DELAY_MS (40) each way
#   eu-west   pgregion and a streaming replica (reached directly), whose WAL
#             arrives from the primary through a relay with the same delay
#
# Commits are synchronous (the test harness turns synchronous_commit off for
# speed, which would hold every commit's WAL back from the replica until the
# WAL writer's next round). pgbench runs a mix through pgregion: 10% of
# transactions update a row and read it back (two autocommit statements), 90%
# read a row. For each level (strong, causal, eventual, set with PGOPTIONS) it
# reports TPS, the latency p50/p99 of the read-only transactions and the average
# of the read-back statement, the share of reads the replica served, the waits
# and fallbacks (from /metrics), and what bench/consistency_checker finds
# (stale reads of read-after-write pairs). Writes the table to $BENCH_OUT when
# set.
#
# Environment (besides bench/lib.sh's): DELAY_MS (40), CLIENTS (16),
# THREADS (2), DURATION (20), WARMUP (3), SCALE (10), CHECKER_SECONDS (10),
# CHECKER_CLIENTS (8), CHECKER_BIN (build/bench/consistency_checker), BENCH_OUT.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DELAY_MS=${DELAY_MS:-40}
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
REPLICAS=1

[[ -x $CHECKER_BIN ]] || die "consistency_checker not found at $CHECKER_BIN (ninja -C build)"
bench_init
start_cluster
REPLICA_PORT=${REPLICA_PORTS%% *}

log "synchronous_commit = on (the harness default is off)"
psql_super -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null
PGPASSWORD=$PG_SUPERPASS psql -X -q -h "$PG_HOST" -p "$REPLICA_PORT" -U "$PG_SUPERUSER" -d "$APP_DB" \
  -c "SELECT pg_reload_conf()" >/dev/null

start_relay us-east "$PG_PORT" "$DELAY_MS"
US_RELAY=$RELAY_PORT
start_relay wal-us-east-to-eu-west "$PG_PORT" "$DELAY_MS"
WAL_RELAY=$RELAY_PORT
log "the replica streams WAL through the relay (+$DELAY_MS ms each way)"
stream_through replica1 "$WAL_RELAY"

PGR_DIR=$BENCH_WORK/pgregion
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
EOF
"$PGREGION_BIN" --check "$PGR_DIR/pgregion.toml" >"$PGR_DIR/check.log" 2>&1 ||
  { cat "$PGR_DIR/check.log" >&2; die "pgregion --check rejected the config"; }
"$PGREGION_BIN" --config "$PGR_DIR/pgregion.toml" >>"$PGR_DIR/pgregion.log" 2>&1 &
PGR_PID=$!
PIDS_TO_STOP+=("$PGR_PID")
wait_ready pgregion "$PGR_PORT" "$PGR_PID" "$PGR_DIR/pgregion.log"

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

# counters FILE: "replica_reads primary_reads waits wait_seconds fallbacks" from
# /metrics (the fallbacks as reason=count,...), saving the scrape in FILE.
counters() {
  metrics >"$1"
  "$PYTHON" - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def total(pattern):
    return sum(float(m.group(1)) for m in re.finditer(pattern + r" (\S+)$", text, re.M))
replica = total(r'^pgregion_routed_total\{[^}]*role="replica"[^}]*\}')
primary = total(r'^pgregion_routed_total\{[^}]*role="primary",'
                r'reason="(?:no_replica|lag_fallback|ryw_fallback|consistency)"\}')
waits = total(r"^pgregion_ryw_wait_seconds_count")
wait_s = total(r"^pgregion_ryw_wait_seconds_sum")
reasons = ("wait_timeout", "no_candidate", "too_far", "write_pending")
fb = ",".join("%s=%d" % (r, total(r'^pgregion_ryw_fallbacks_total\{reason="' + r + r'"\}'))
              for r in reasons)
print(int(replica), int(primary), int(waits), wait_s, fb)
EOF
}

declare -A ROW
for level in "${LEVELS[@]}"; do
  export PGOPTIONS="-c pgregion.consistency=$level"
  run_child "$BENCH_WORK/warmup_$level.log" env PGPASSWORD="$APP_PASSWORD" \
    timeout $((WARMUP + 60)) pgbench -n -c "$CLIENTS" -j "$THREADS" -T "$WARMUP" \
    -f "$BENCH_WORK/read.sql@9" -f "$BENCH_WORK/write_read.sql@1" \
    -h 127.0.0.1 -p "$PGR_PORT" -U "$APP_USER" "$APP_DB" || true
  read -r rep0 pri0 waits0 wsum0 fb0 <<<"$(counters "$BENCH_WORK/metrics_${level}_0.txt")"
  log "pgbench 90% read / 10% update + read back, consistency $level (${DURATION}s)"
  out=$BENCH_WORK/run_$level.log
  rm -f "$BENCH_WORK"/pgbench_log_"$level"*
  run_child "$out" env PGPASSWORD="$APP_PASSWORD" timeout $((DURATION + 60)) \
    pgbench -n -r -l --log-prefix="$BENCH_WORK/pgbench_log_$level" -c "$CLIENTS" -j "$THREADS" \
    -T "$DURATION" -f "$BENCH_WORK/read.sql@9" -f "$BENCH_WORK/write_read.sql@1" \
    -h 127.0.0.1 -p "$PGR_PORT" -U "$APP_USER" "$APP_DB" || die "pgbench failed under $level (see $out)"
  read -r rep1 pri1 waits1 wsum1 fb1 <<<"$(counters "$BENCH_WORK/metrics_${level}_1.txt")"
  unset PGOPTIONS
  tps=$(sed -n 's/^tps = \([0-9]*\)[0-9.]* (without initial connection time).*/\1/p' "$out")
  nfail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
  [[ -n $tps && ${nfail:-0} == 0 ]] || die "failed transactions under $level (see $out)"
  # The read-back statement's average (-r): the last SELECT line of the write script.
  readback=$(awk '/SQL script 2/ {s = 1} s && /SELECT abalance/ {print $1}' "$out" | tail -n 1)
  # Read-only transactions (script 0) from the per-transaction log: latency in µs, column 3.
  lat=$(cat "$BENCH_WORK"/pgbench_log_"$level"* | awk '$4 == 0 {print $3}' | sort -n | awk '
    {v[NR] = $1} END {if (NR == 0) {print "0 0"; exit}
      p50 = v[int(NR * 0.50) + (NR * 0.50 > int(NR * 0.50))]; p99 = v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))]
      printf "%.2f %.2f", p50 / 1000, p99 / 1000}')
  read -r p50 p99 <<<"$lat"
  replica_share=$(awk -v r=$((rep1 - rep0)) -v p=$((pri1 - pri0)) 'BEGIN {printf "%.0f%%", (r + p > 0 ? 100 * r / (r + p) : 0)}')
  waits=$((waits1 - waits0))
  avg_wait=$(awk -v n="$waits" -v a="$wsum0" -v b="$wsum1" 'BEGIN {printf "%.1f", (n > 0 ? (b - a) / n * 1000 : 0)}')
  fallbacks=$("$PYTHON" -c '
import sys
a = dict(x.split("=") for x in sys.argv[1].split(","))
b = dict(x.split("=") for x in sys.argv[2].split(","))
d = {k: int(b[k]) - int(a.get(k, 0)) for k in b}
print(", ".join(f"{k} {v}" for k, v in d.items() if v) or "0")' "$fb0" "$fb1")
  log "  tps $tps, read p50 $p50 ms p99 $p99 ms, read-back avg $readback ms, replica share $replica_share, waits $waits (avg $avg_wait ms), fallbacks: $fallbacks"
  log "consistency_checker, $level (${CHECKER_SECONDS}s, $CHECKER_CLIENTS clients)"
  checker_out=$BENCH_WORK/checker_$level.json
  "$CHECKER_BIN" --dsn "host=127.0.0.1 port=$PGR_PORT user=$APP_USER password=$APP_PASSWORD dbname=$APP_DB" \
    --clients "$CHECKER_CLIENTS" --seconds "$CHECKER_SECONDS" --consistency "$level" \
    >"$checker_out" 2>"$BENCH_WORK/checker_$level.err" || die "consistency_checker failed under $level"
  stale=$(json_get "$checker_out" '"%d of %d (replica served %d)" % (d["stale"], d["reads"], d["replica_reads"])')
  log "  stale reads: $stale"
  ROW[$level]="| $level | $tps | $p50 | $p99 | $readback | $replica_share | $waits (avg $avg_wait ms) | $fallbacks | $stale |"
done

REPORT=$BENCH_WORK/ryw_report.md
{
  echo "### Read-your-writes: consistency levels in the three-region setup"
  echo
  machine_header
  echo "- pgregion in eu-west; primary in us-east through a WAN-link relay (+$DELAY_MS ms each way); the eu-west replica reached directly, its WAL through a relay with the same delay; synchronous_commit = on"
  echo "- pgbench -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE: 90% read a row, 10% update a row and read it back (two autocommit statements); the level set with PGOPTIONS"
  echo "- consistency_checker: $CHECKER_CLIENTS clients for ${CHECKER_SECONDS}s, each writing a row and reading it back at once on the same connection"
  echo
  echo "| level | TPS | read p50 ms | read p99 ms | read-back avg ms | reads on the replica | waits | fallbacks | checker: stale of read-after-write pairs |"
  echo "|---|---:|---:|---:|---:|---:|---|---|---|"
  for level in "${LEVELS[@]}"; do echo "${ROW[$level]}"; done
} >"$REPORT"
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
