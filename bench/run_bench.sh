#!/usr/bin/env bash
# Side-by-side benchmark: direct PostgreSQL vs PgBouncer vs pgregion, in one run
# on this machine, then proxy memory per idle client connection.
#
# Usage (as root, from anywhere):  bench/run_bench.sh
# Builds nothing: expects build/proxy/pgregion (or PGREGION_BIN). See bench/README.md.
#
# Environment (defaults in brackets):
#   CLIENTS [16] THREADS [2] DURATION [15] seconds per measured run
#   WARMUP [3]      seconds of unmeasured load on a target right before each measured run
#   ROUNDS [2]      rounds per workload; target order alternates (ABC, CBA, ...) so
#                   drift over time hits every target equally; results are the mean
#   SCALE [10]      pgbench -i scale factor (initialized once, directly on Postgres)
#   IDLE_CLIENTS [2000]  idle connections for the memory measurement (0 skips it)
#   BENCH_OUT       also write the report (Markdown) to this file
#   WORKLOADS_ONLY  comma-separated subset of "-S", "-S -M extended", "-N" (quick checks)
#   plus REPLICAS, AUTH, POOL_SIZE, PGREGION_BIN, BENCH_WORK, KEEP_WORK (bench/lib.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-2}
SCALE=${SCALE:-10}
IDLE_CLIENTS=${IDLE_CLIENTS:-2000}
if ((IDLE_CLIENTS + 100 > MAX_CLIENTS)); then MAX_CLIENTS=$((IDLE_CLIENTS + 1000)); fi

WORKLOADS=("-S" "-S -M extended" "-N")
# WORKLOADS_ONLY="-N" (comma-separated) runs a subset, for quick checks while tuning.
if [[ -n ${WORKLOADS_ONLY:-} ]]; then IFS=, read -ra WORKLOADS <<<"$WORKLOADS_ONLY"; fi
declare -A WORKLOAD_NAME=(
  ["-S"]="select-only, simple (-S)"
  ["-S -M extended"]="select-only, extended (-S -M extended)"
  ["-N"]="simple-update, TPC-B-like (-N)"
)
TARGETS=(direct pgbouncer pgregion)
declare -A TARGET_NAME=([direct]="direct Postgres" [pgbouncer]="PgBouncer" [pgregion]="pgregion")

bench_init
start_cluster
start_pgbouncer
start_pgregion
declare -A PORT=([direct]=$PG_PORT [pgbouncer]=$PGB_PORT [pgregion]=$PGR_PORT)
declare -A PROXY_PID=([pgbouncer]=$PGB_PID [pgregion]=$PGR_PID)
CLK_TCK=$(getconf CLK_TCK)

log "pgbench -i -s $SCALE (directly on the primary)"
PGPASSWORD=$APP_PASSWORD pgbench -i -s "$SCALE" -q -h "$PG_HOST" -p "$PG_PORT" -U "$APP_USER" "$APP_DB" \
  >"$BENCH_WORK/pgbench_init.log" 2>&1 || { tail -n 20 "$BENCH_WORK/pgbench_init.log" >&2; die "pgbench -i failed"; }
psql_super -c 'CHECKPOINT' >/dev/null

# pgbench_run TARGET WORKLOAD SECONDS LOGFILE
pgbench_run() {
  local target=$1 workload=$2 seconds=$3 logfile=$4
  # shellcheck disable=SC2086  # the workload is a list of flags
  run_child "$logfile" env PGPASSWORD="$APP_PASSWORD" timeout $((seconds + 60)) pgbench -n $workload \
    -c "$CLIENTS" -j "$THREADS" -T "$seconds" -h 127.0.0.1 -p "${PORT[$target]}" -U "$APP_USER" \
    "$APP_DB"
}

# Same reset pgbench does before a run (it is skipped with -n), done directly on
# the primary so that no target pays for it inside its measurement.
reset_tables() {
  psql_super -c 'VACUUM pgbench_branches' -c 'VACUUM pgbench_tellers' -c 'TRUNCATE pgbench_history' >/dev/null
}

declare -A TPS_SUM LAT_SUM RUNS FAILED PER_RUN CPU_US_SUM
ANY_FAILED=0
for workload in "${WORKLOADS[@]}"; do
  for ((round = 1; round <= ROUNDS; round++)); do
    order=("${TARGETS[@]}")
    if ((round % 2 == 0)); then # reversed: ABC, CBA, ABC, ...
      order=()
      for ((i = ${#TARGETS[@]} - 1; i >= 0; i--)); do order+=("${TARGETS[$i]}"); done
    fi
    for target in "${order[@]}"; do
      key="$workload|$target"
      tag="${workload// /}_${target}_r$round"
      tag=${tag//-/}
      reset_tables
      pgbench_run "$target" "$workload" "$WARMUP" "$BENCH_WORK/warmup_$tag.log" ||
        log "warm-up failed: $target $workload (see $BENCH_WORK/warmup_$tag.log)"
      log "round $round/$ROUNDS: ${WORKLOAD_NAME[$workload]} -> ${TARGET_NAME[$target]} (${DURATION}s)"
      out=$BENCH_WORK/run_$tag.log
      rc=0
      proxy_pid=${PROXY_PID[$target]:-}
      ticks0=0
      if [[ -n $proxy_pid ]]; then ticks0=$(cpu_ticks "$proxy_pid"); fi
      pgbench_run "$target" "$workload" "$DURATION" "$out" || rc=$?
      ticks1=0
      if [[ -n $proxy_pid ]]; then ticks1=$(cpu_ticks "$proxy_pid"); fi
      ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
      tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out")
      lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
      nfail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
      if [[ $rc != 0 || -z $tps || -z $lat || ${nfail:-0} != 0 ]]; then
        log "FAILED: $target $workload (exit $rc, failed transactions ${nfail:-?}); last lines of $out:"
        tail -n 8 "$out" >&2
        FAILED[$key]=1
        ANY_FAILED=1
        continue
      fi
      TPS_SUM[$key]=$(awk -v a="${TPS_SUM[$key]:-0}" -v b="$tps" 'BEGIN {print a + b}')
      LAT_SUM[$key]=$(awk -v a="${LAT_SUM[$key]:-0}" -v b="$lat" 'BEGIN {print a + b}')
      RUNS[$key]=$((${RUNS[$key]:-0} + 1))
      if [[ -n $proxy_pid && ${ntx:-0} -gt 0 ]]; then
        CPU_US_SUM[$key]=$(awk -v a="${CPU_US_SUM[$key]:-0}" -v t=$((ticks1 - ticks0)) -v hz="$CLK_TCK" \
          -v n="$ntx" 'BEGIN {print a + t / hz / n * 1e6}')
      fi
      PER_RUN[$key]="${PER_RUN[$key]:+${PER_RUN[$key]}, }$(printf '%.0f' "$tps")"
      log "  tps $tps, latency $lat ms"
    done
  done
done

mean() { awk -v s="$1" -v n="$2" 'BEGIN {printf "%.6f", s / n}'; }

REPORT=$BENCH_WORK/report.md
{
  echo "### Side-by-side: pgbench through each target"
  echo
  machine_header
  echo "- pgbench -c $CLIENTS -j $THREADS -T $DURATION (after a ${WARMUP}s warm-up per target and run), scale $SCALE, $ROUNDS round(s) per workload with target order alternating; TPS excludes connection time; values are the mean over rounds"
  echo
  echo "| workload | target | TPS | avg latency ms | pgregion/PgBouncer ratio |"
  echo "|---|---|---:|---:|---:|"
  for workload in "${WORKLOADS[@]}"; do
    bouncer_tps=""
    key="$workload|pgbouncer"
    if [[ -z ${FAILED[$key]:-} && -n ${RUNS[$key]:-} ]]; then
      bouncer_tps=$(mean "${TPS_SUM[$key]}" "${RUNS[$key]}")
    fi
    for target in "${TARGETS[@]}"; do
      key="$workload|$target"
      if [[ -n ${FAILED[$key]:-} || -z ${RUNS[$key]:-} ]]; then
        echo "| ${WORKLOAD_NAME[$workload]} | ${TARGET_NAME[$target]} | FAILED | FAILED | |"
        continue
      fi
      tps=$(mean "${TPS_SUM[$key]}" "${RUNS[$key]}")
      lat=$(mean "${LAT_SUM[$key]}" "${RUNS[$key]}")
      ratio=""
      if [[ $target == pgregion && -n $bouncer_tps ]]; then
        ratio=$(awk -v a="$tps" -v b="$bouncer_tps" 'BEGIN {printf "**%.2f**", a / b}')
      fi
      printf '| %s | %s | %.0f | %.3f | %s |\n' "${WORKLOAD_NAME[$workload]}" "${TARGET_NAME[$target]}" \
        "$tps" "$lat" "$ratio"
    done
  done
  echo
  echo "Proxy CPU per transaction (user + system time of the proxy process during the measured runs,"
  echo "divided by the transactions pgbench reports; less sensitive to other load on the machine than TPS):"
  echo
  echo "| workload | PgBouncer µs/txn | pgregion µs/txn |"
  echo "|---|---:|---:|"
  for workload in "${WORKLOADS[@]}"; do
    row="| ${WORKLOAD_NAME[$workload]} |"
    for target in pgbouncer pgregion; do
      key="$workload|$target"
      if [[ -n ${CPU_US_SUM[$key]:-} && -n ${RUNS[$key]:-} ]]; then
        row+=" $(awk -v s="${CPU_US_SUM[$key]}" -v n="${RUNS[$key]}" 'BEGIN {printf "%.1f", s / n}') |"
      else
        row+=" |"
      fi
    done
    echo "$row"
  done
  echo
  echo "Per-run TPS (in run order within each target):"
  echo
  for workload in "${WORKLOADS[@]}"; do
    line="- ${WORKLOAD_NAME[$workload]}:"
    for target in "${TARGETS[@]}"; do
      line+=" ${TARGET_NAME[$target]} [${PER_RUN[$workload|$target]:-failed}];"
    done
    echo "${line%;}"
  done
  echo
  echo "pgregion/PgBouncer TPS ratio per round (the two ran back to back in each round, so drift"
  echo "that moves both cancels out; the spread shows how far one round can be trusted):"
  echo
  for workload in "${WORKLOADS[@]}"; do
    a=${PER_RUN[$workload|pgregion]:-}
    b=${PER_RUN[$workload|pgbouncer]:-}
    [[ -n $a && -n $b ]] || continue
    # A failed run leaves a gap that would pair rounds wrongly.
    [[ -z ${FAILED[$workload|pgregion]:-} && -z ${FAILED[$workload|pgbouncer]:-} ]] || continue
    awk -v name="${WORKLOAD_NAME[$workload]}" -v a="$a" -v b="$b" 'BEGIN {
      n = split(a, x, /, /); m = split(b, y, /, /); if (m < n) n = m
      out = ""; won = 0; lo = 1e9; hi = 0
      for (i = 1; i <= n; i++) {
        r = x[i] / y[i]; out = out (i > 1 ? ", " : "") sprintf("%.2f", r)
        if (r >= 1) won++
        if (r < lo) lo = r
        if (r > hi) hi = r
      }
      printf "- %s: %s (min %.2f, max %.2f; pgregion ahead in %d of %d rounds)\n", name, out, lo, hi, won, n
    }'
  done
} >"$REPORT"
cat "$REPORT"

if ((IDLE_CLIENTS > 0)); then
  ensure_idle_clients_bin
  log "idle clients: $IDLE_CLIENTS to PgBouncer, then to pgregion"
  {
    echo
    echo "### Proxy memory per idle client connection"
    echo
    echo "$IDLE_CLIENTS idle clients (authenticated with $AUTH, then idle), opened after the runs above;"
    echo "memory of the proxy process before and while they are connected (VmRSS from /proc/PID/status,"
    echo "Pss from /proc/PID/smaps_rollup); KiB/client = (after - before) / connected clients."
    echo
    idle_table_header
    measure_idle PgBouncer "$PGB_PID" "$PGB_PORT" "$IDLE_CLIENTS"
    measure_idle pgregion "$PGR_PID" "$PGR_PORT" "$IDLE_CLIENTS"
  } >"$BENCH_WORK/idle.md"
  cat "$BENCH_WORK/idle.md"
  cat "$BENCH_WORK/idle.md" >>"$REPORT"
fi

if [[ -n ${BENCH_OUT:-} ]]; then
  cp "$REPORT" "$BENCH_OUT"
  log "report written to $BENCH_OUT"
fi
if [[ $ANY_FAILED == 1 || $IDLE_FAILED == 1 ]]; then
  die "some runs failed (see above; KEEP_WORK=1 keeps the logs)"
fi
