#!/usr/bin/env bash
# ORM benchmark (issue 18): SQLAlchemy 1.4 in its default transactional mode and Django
# 3.2 with ATOMIC_REQUESTS, through pgregion in the three-region setup:
#
#   us-east    the primary, reached by pgregion through a WAN-link relay adding
#              DELAY_MS (40) each way
#   eu-west    pgregion and streaming replica 1 (reached directly); its WAL comes
#              from the primary through a relay with the same delay
#   ap-south   streaming replica 2 behind a relay of AP_DELAY_MS (90) each way, its
#              WAL through a relay of the same delay
#
# Commits are synchronous (as in ryw_bench.sh). Both applications
# (tests/drivers/python/) run CLIENTS client threads for DURATION seconds each:
# request-style units, WRITE_RATIO of them read then write, the others read only,
# every transaction ending with SELECT pg_is_in_recovery() and every result checked
# against the program's model. Each runs twice: with pgregion's default (optimistic
# transactions) and with `options=-c pgregion.optimistic=off` (every transaction on the
# primary: the baseline for the latency that moving a transaction to the primary adds).
# Reports per run: read-only transactions served by replicas, wrong results (must be
# 0), 40001s, transactions started / moved / mismatched and moves by reason (from
# /metrics), p50/p99 per kind. Writes the Markdown table to $BENCH_OUT when set.
#
# Environment (besides bench/lib.sh's): DELAY_MS (40), AP_DELAY_MS (90), CLIENTS (8),
# DURATION (30), WRITE_RATIO (0.1), MODES ("off on"), WORKLOADS ("sqlalchemy django"),
# BENCH_OUT. Needs python3-sqlalchemy, python3-django, python3-psycopg2 (scripts/test.sh
# installs them).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DELAY_MS=${DELAY_MS:-40}
AP_DELAY_MS=${AP_DELAY_MS:-90}
CLIENTS=${CLIENTS:-8}
DURATION=${DURATION:-30}
WRITE_RATIO=${WRITE_RATIO:-0.1}
MODES=${MODES:-off on}
WORKLOADS=${WORKLOADS:-sqlalchemy django}
DRIVERS=$BENCH_REPO/tests/drivers/python
# shellcheck disable=SC2034  # read by bench/lib.sh
REPLICAS=2

"$PYTHON" -c 'import sqlalchemy, django, psycopg2' 2>/dev/null ||
  die "needs python3-sqlalchemy, python3-django and python3-psycopg2 (apt-get install them)"
bench_init
start_cluster
read -r EU_PORT AP_PORT <<<"$REPLICA_PORTS"

log "synchronous_commit = on (the harness default is off)"
psql_super -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null

start_relay us-east "$PG_PORT" "$DELAY_MS"
US_RELAY=$RELAY_PORT
start_relay ap-south "$AP_PORT" "$AP_DELAY_MS"
AP_RELAY=$RELAY_PORT
start_relay wal-us-east-to-eu-west "$PG_PORT" "$DELAY_MS"
stream_through replica1 "$RELAY_PORT"
start_relay wal-us-east-to-ap-south "$PG_PORT" "$AP_DELAY_MS"
stream_through replica2 "$RELAY_PORT"
log "replicas stream WAL through relays (eu-west +$DELAY_MS ms, ap-south +$AP_DELAY_MS ms each way)"

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
# The programs end each transaction with it to say where it ran; its answer differs
# per node, so it must be declared read-only to run on a replica at all.
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
port = $EU_PORT

[[nodes]]
name = "pg-ap-south"
region = "ap-south"
host = "127.0.0.1"
port = $AP_RELAY
EOF
"$PGREGION_BIN" --check "$PGR_DIR/pgregion.toml" >"$PGR_DIR/check.log" 2>&1 ||
  { cat "$PGR_DIR/check.log" >&2; die "pgregion --check rejected the config"; }
"$PGREGION_BIN" --config "$PGR_DIR/pgregion.toml" >>"$PGR_DIR/pgregion.log" 2>&1 &
PGR_PID=$!
PIDS_TO_STOP+=("$PGR_PID")
wait_ready pgregion "$PGR_PORT" "$PGR_PID" "$PGR_DIR/pgregion.log"

export PYTHONDONTWRITEBYTECODE=1
export PGREGION_HOST=127.0.0.1 PGREGION_PORT=$PGR_PORT PGREGION_USER=$APP_USER \
  PGREGION_PASSWORD=$APP_PASSWORD PGREGION_DB=$APP_DB
SA=("$PYTHON" "$DRIVERS/sqlalchemy_app.py" --port "$PGR_PORT" --user "$APP_USER"
  --password "$APP_PASSWORD" --dbname "$APP_DB")
manage() { (cd "$DRIVERS/django_app" && "$PYTHON" manage.py "$@"); }

log "schemas through pgregion: SQLAlchemy create_all, Django migrate, and their products"
run_child "$BENCH_WORK/setup_sqlalchemy.log" timeout 120 "${SA[@]}" --setup ||
  { cat "$BENCH_WORK/setup_sqlalchemy.log" >&2; die "sqlalchemy_app.py --setup failed"; }
run_child "$BENCH_WORK/setup_django.log" timeout 180 bash -c \
  "cd '$DRIVERS/django_app' && '$PYTHON' manage.py migrate --noinput && '$PYTHON' manage.py seed_shop" ||
  { cat "$BENCH_WORK/setup_django.log" >&2; die "Django migrate/seed_shop failed"; }
for port in $EU_PORT $AP_PORT; do
  for ((i = 0; i < 600; i++)); do
    n=$(PGPASSWORD=$PG_SUPERPASS psql -X -Atq -h "$PG_HOST" -p "$port" -U "$PG_SUPERUSER" -d "$APP_DB" \
      -c 'SELECT (SELECT count(*) FROM sa_products) + (SELECT count(*) FROM shop_product)' 2>/dev/null || true)
    [[ $n == 80 ]] && break
    sleep 0.1
  done
  [[ $n == 80 ]] || die "the replica on port $port did not replay the setup within 60 s"
done
sleep 2 # RTTs measured, roles discovered

metrics() { curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null || "$PYTHON" -c '
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end="")' \
  "http://127.0.0.1:$ADMIN_PORT/metrics"; }

RUNS=$BENCH_WORK/runs
mkdir -p "$RUNS"
for workload in $WORKLOADS; do
  for mode in $MODES; do
    name=$workload-$mode
    off_env=()
    sa_mode=()
    if [[ $mode == off ]]; then off_env=(PGREGION_OPTIMISTIC=off); sa_mode=(--optimistic off); fi
    log "$workload, optimistic $mode: $CLIENTS clients for ${DURATION}s, write ratio $WRITE_RATIO"
    metrics >"$RUNS/$name.m0" || die "/metrics unreachable"
    out=$BENCH_WORK/run_$name.log
    if [[ $workload == sqlalchemy ]]; then
      run_child "$out" timeout $((DURATION + 180)) "${SA[@]}" "${sa_mode[@]}" --clients "$CLIENTS" \
        --units 100000000 --duration "$DURATION" --write-ratio "$WRITE_RATIO" --tag "sa-$mode" || true
    else
      run_child "$out" timeout $((DURATION + 180)) env "${off_env[@]}" bash -c \
        "cd '$DRIVERS/django_app' && exec '$PYTHON' manage.py run_requests --clients $CLIENTS \
         --requests 100000000 --duration $DURATION --write-ratio $WRITE_RATIO --tag dj-$mode" || true
    fi
    metrics >"$RUNS/$name.m1" || die "/metrics unreachable"
    grep '^{' "$out" | tail -n 1 >"$RUNS/$name.json" || true
    if [[ ! -s $RUNS/$name.json ]]; then
      log "  no summary (see $out):"
      tail -n 5 "$out" >&2
      continue
    fi
    log "  $(json_get "$RUNS/$name.json" '"%d units, %d of %d read-only on a replica, %d wrong, %d x 40001, %d errors" % (d["units"], d["read_only_on_replica"], d["read_only_units"], d["wrong_results"], d["serialization_failures"], len(d["errors"]))')"
  done
done

REPORT=$BENCH_WORK/orm_report.md
{
  echo "### ORM workloads: optimistic read transactions in the three-region setup"
  echo
  machine_header
  echo "- pgregion in eu-west; primary in us-east through a WAN-link relay (+$DELAY_MS ms each way); the eu-west replica reached directly, its WAL through a relay with the same delay; the ap-south replica behind +$AP_DELAY_MS ms (its WAL too); synchronous_commit = on; pgregion's defaults (causal consistency)"
  echo "- Each workload: $CLIENTS client threads for ${DURATION}s, each in its own pgregion session; $(awk -v w="$WRITE_RATIO" 'BEGIN {printf "%.0f%%", w * 100}') of the units read an account and a product then write an order and the balance, the others run 3 reads; the last statement of each transaction is SELECT pg_is_in_recovery(); every result checked against the program's model; a 40001 is retried"
  echo "- sqlalchemy: tests/drivers/python/sqlalchemy_app.py (SQLAlchemy $("$PYTHON" -c 'import sqlalchemy; print(sqlalchemy.__version__)'), psycopg2, ORM Session and Core engine.connect(), default transactional mode); django: tests/drivers/python/django_app run_requests (Django $("$PYTHON" -c 'import django; print(django.get_version())'), ATOMIC_REQUESTS, test Client against the real database)"
  echo "- optimistic off: startup options=-c pgregion.optimistic=off, every transaction on the primary (the baseline); latencies per unit in ms, retries included"
  echo
  "$PYTHON" "$BENCH_REPO/bench/orm_report.py" "$RUNS"
} >"$REPORT"
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
# A wrong result, a client error or a run without a summary fails the benchmark.
bad=0
for workload in $WORKLOADS; do
  for mode in $MODES; do
    f=$RUNS/$workload-$mode.json
    if [[ ! -s $f ]] || [[ $(json_get "$f" 'd["wrong_results"] + len(d["errors"]) + d["gave_up"]') != 0 ]]; then
      log "$workload-$mode: wrong results, client errors or no summary (see $BENCH_WORK/run_$workload-$mode.log)"
      bad=1
    fi
  done
done
exit "$bad"
