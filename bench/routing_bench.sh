#!/usr/bin/env bash
# pgbench -S through pgregion with read routing versus pgregion sending
# everything to one node, in one run (issue 3: "routing adds nothing
# measurable to pgbench -S throughput").
#
# One primary and one streaming replica; two pgregion instances from the same
# binary and the same config except one key:
#   routed    [routing] route = "auto": every -S statement is classified and
#             sent to the replica
#   one-node  [routing] route = "primary": every statement is classified the
#             same way and sent to the primary (the core proxy's behaviour)
#   routed-metrics  routed with [admin] listen set: the per-unit metrics timing
#             is on (issue 6: the cost of metrics on -S)
# plus the primary and the replica directly (a standby answers -S somewhat
# slower than a primary; that part of any difference is not the proxy's).
# Rounds alternate the order. Prints TPS, average latency and the proxy's CPU
# per transaction for each, and the routed/one-node ratio; writes the table to
# $BENCH_OUT when set.
#
# Environment (besides bench/lib.sh's): CLIENTS (16), THREADS (2),
# DURATION (15), WARMUP (3), ROUNDS (3), SCALE (10), BENCH_OUT.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-10}
REPLICAS=1

bench_init
start_cluster
start_pgregion routed $'[routing]\nroute = "auto"'
ROUTED_PORT=$PGR_PORT ROUTED_PID=$PGR_PID
start_pgregion one-node $'[routing]\nroute = "primary"'
ONE_PORT=$PGR_PORT ONE_PID=$PGR_PID
# Issue 6: the same routed instance with the admin endpoint on (metrics timing per unit).
ADMIN_PORT=$(free_port)
start_pgregion routed-metrics $'[routing]\nroute = "auto"\n[admin]\nlisten = "127.0.0.1:'"$ADMIN_PORT"'"'
METRICS_PORT=$PGR_PORT METRICS_PID=$PGR_PID
declare -A PORT=([routed]=$ROUTED_PORT [one-node]=$ONE_PORT [routed-metrics]=$METRICS_PORT
  [direct-primary]=$PG_PORT)
declare -A PID=([routed]=$ROUTED_PID [one-node]=$ONE_PID [routed-metrics]=$METRICS_PID)
# The two servers directly, without a proxy: a standby answers -S a little
# slower than a primary, which is not the proxy's doing.
TARGETS=(routed one-node routed-metrics direct-primary direct-replica)
CLK_TCK=$(getconf CLK_TCK)

log "pgbench -i -s $SCALE (directly on the primary)"
PGPASSWORD=$APP_PASSWORD pgbench -i -s "$SCALE" -q -h "$PG_HOST" -p "$PG_PORT" -U "$APP_USER" "$APP_DB" \
  >"$BENCH_WORK/pgbench_init.log" 2>&1 || { tail -n 20 "$BENCH_WORK/pgbench_init.log" >&2; die "pgbench -i failed"; }
psql_super -c 'CHECKPOINT' >/dev/null
# The replica must have the tables before reads go there (bounded wait).
replica_port=${REPLICA_PORTS%% *}
PORT[direct-replica]=$replica_port
for ((i = 0; i < 600; i++)); do
  n=$(PGPASSWORD=$PG_SUPERPASS psql -X -Atq -h "$PG_HOST" -p "$replica_port" -U "$PG_SUPERUSER" \
    -d "$APP_DB" -c 'SELECT count(*) FROM pgbench_branches' 2>/dev/null || true)
  [[ $n == "$SCALE" ]] && break
  sleep 0.1
done
[[ $n == "$SCALE" ]] || die "the replica did not replay pgbench -i within 60 s"
sleep 2 # the health checker has discovered roles by now (interval 500 ms)

idx_scans() { # idx_scans PORT: index scans on pgbench_accounts on that node
  PGPASSWORD=$PG_SUPERPASS psql -X -Atq -h "$PG_HOST" -p "$1" -U "$PG_SUPERUSER" -d "$APP_DB" \
    -c "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_tables WHERE relname = 'pgbench_accounts'"
}

declare -A TPS_SUM LAT_SUM RUNS CPU_SUM SCANS
for ((round = 1; round <= ROUNDS; round++)); do
  order=("${TARGETS[@]}")
  if ((round % 2 == 0)); then order=(direct-replica direct-primary routed-metrics one-node routed); fi
  for target in "${order[@]}"; do
    run_child "$BENCH_WORK/warmup_${target}_$round.log" env PGPASSWORD="$APP_PASSWORD" \
      timeout $((WARMUP + 60)) pgbench -n -S -c "$CLIENTS" -j "$THREADS" -T "$WARMUP" \
      -h 127.0.0.1 -p "${PORT[$target]}" -U "$APP_USER" "$APP_DB" || true
    log "round $round/$ROUNDS: pgbench -S -> pgregion $target (${DURATION}s)"
    out=$BENCH_WORK/run_${target}_$round.log
    primary0=$(idx_scans "$PG_PORT")
    replica0=$(idx_scans "$replica_port")
    t0=0
    if [[ -n ${PID[$target]:-} ]]; then t0=$(cpu_ticks "${PID[$target]}"); fi
    run_child "$out" env PGPASSWORD="$APP_PASSWORD" timeout $((DURATION + 60)) pgbench -n -S \
      -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -h 127.0.0.1 -p "${PORT[$target]}" \
      -U "$APP_USER" "$APP_DB" || die "pgbench failed through $target (see $out)"
    t1=0
    if [[ -n ${PID[$target]:-} ]]; then t1=$(cpu_ticks "${PID[$target]}"); fi
    sleep 1 # statistics reach pg_stat_user_tables at most once a second
    primary1=$(idx_scans "$PG_PORT")
    replica1=$(idx_scans "$replica_port")
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
    ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    nfail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    [[ -n $tps && ${nfail:-0} == 0 ]] || die "failed transactions through $target (see $out)"
    TPS_SUM[$target]=$(awk -v a="${TPS_SUM[$target]:-0}" -v b="$tps" 'BEGIN {print a + b}')
    LAT_SUM[$target]=$(awk -v a="${LAT_SUM[$target]:-0}" -v b="$lat" 'BEGIN {print a + b}')
    CPU_SUM[$target]=$(awk -v a="${CPU_SUM[$target]:-0}" -v t=$((t1 - t0)) -v hz="$CLK_TCK" \
      -v n="$ntx" 'BEGIN {print a + t / hz / n * 1e6}')
    RUNS[$target]=$((${RUNS[$target]:-0} + 1))
    SCANS[$target]="primary +$((primary1 - primary0)), replica +$((replica1 - replica0))"
    log "  tps $tps, latency $lat ms; index scans: ${SCANS[$target]}"
  done
done

REPORT=$BENCH_WORK/routing_report.md
{
  echo "### pgbench -S: read routing versus one node, same run"
  echo
  machine_header
  echo "- primary + 1 streaming replica; pgbench -S -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE, $ROUNDS rounds alternating order; both pgregion instances classify every statement"
  echo
  echo "| target | where -S ran (index scans, last round; idle backends report theirs up to 10 s late) | TPS | avg latency ms | proxy CPU µs/txn |"
  echo "|---|---|---:|---:|---:|"
  for target in "${TARGETS[@]}"; do
    awk -v t="$target" -v s="${SCANS[$target]}" -v tps="${TPS_SUM[$target]}" -v lat="${LAT_SUM[$target]}" \
      -v cpu="${CPU_SUM[$target]}" -v n="${RUNS[$target]}" \
      'BEGIN {printf "| %s | %s | %.0f | %.3f | %.1f |\n", t, s, tps / n, lat / n, cpu / n}'
  done
  awk -v a="${TPS_SUM[routed]}" -v b="${TPS_SUM[one-node]}" \
    -v r="${TPS_SUM[direct-replica]}" -v p="${TPS_SUM[direct-primary]}" \
    -v m="${TPS_SUM[routed-metrics]}" \
    'BEGIN {printf "\nrouted / one-node TPS: **%.2f**; direct replica / direct primary: %.2f; routed with metrics ([admin] on) / routed: %.2f\n", a / b, r / p, m / a}'
} >"$REPORT"
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
