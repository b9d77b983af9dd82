#!/usr/bin/env bash
# Proxy memory per idle client connection, on its own (bench/run_bench.sh also
# does this after its pgbench runs). Starts a cluster, PgBouncer and pgregion,
# opens IDLE_CLIENTS [2000] idle connections to each proxy in turn with
# bench/idle_clients, and prints VmRSS and Pss before and while they are held.
#
# Usage (as root):  bench/idle_memory.sh
# Environment: IDLE_CLIENTS, BENCH_OUT, and those of bench/lib.sh.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IDLE_CLIENTS=${IDLE_CLIENTS:-2000}
((IDLE_CLIENTS > 0)) || die "IDLE_CLIENTS must be positive"
if ((IDLE_CLIENTS + 100 > MAX_CLIENTS)); then MAX_CLIENTS=$((IDLE_CLIENTS + 1000)); fi

bench_init
ensure_idle_clients_bin
start_cluster
start_pgbouncer
start_pgregion

REPORT=$BENCH_WORK/idle.md
{
  echo "### Proxy memory per idle client connection"
  echo
  machine_header
  echo
  echo "$IDLE_CLIENTS idle clients (authenticated with $AUTH, then idle) against freshly started proxies;"
  echo "VmRSS from /proc/PID/status, Pss from /proc/PID/smaps_rollup; KiB/client = (after - before) / connected."
  echo
  idle_table_header
  measure_idle PgBouncer "$PGB_PID" "$PGB_PORT" "$IDLE_CLIENTS"
  measure_idle pgregion "$PGR_PID" "$PGR_PORT" "$IDLE_CLIENTS"
} >"$REPORT"
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
((IDLE_FAILED == 0)) || die "not every idle client connected and stayed connected"
