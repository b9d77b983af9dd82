#!/usr/bin/env bash
# pgbench -S through pgregion with tenants configured versus without, in one
# run (issue 20: "routing cost per statement with tenants configured stays
# within 5% of today's").
#
# One primary (us-east) and REPLICAS streaming replicas (eu-west, then
# ap-south) on loopback; pgregion runs in eu-west. Two pgregion instances from
# the same binary, with configs that differ only in tenancy:
#   A  today's config: no [tenancy], no [[tenants]]
#   B  the same plus [tenancy] setting = "app.tenant_id" and TENANT_ENTRIES
#      generated [[tenants]] entries (TENANT_SOURCE=mapping: as many rows of a
#      table read with [tenancy] query instead); the measured tenant (TENANT) prefers
#      eu-west, the local replica's region, so B routes every read where A
#      does and only the cost of the tenant work differs
# Every pgbench client sends the tenant at startup
# (PGOPTIONS="-c app.tenant_id=t42"; TENANT_VIA=pgregion sends
# pgregion.tenant instead), to A and B alike: A ignores it. Rounds alternate
# the order (AB, BA, ...). Per round: TPS and the proxy's CPU per transaction
# (user + system from /proc/PID/stat), and B/A; then the medians. Checks that
# B resolved the tenant (SHOW TENANTS in the admin console counts the
# tenant's reads: they must match pgbench's transactions) and that A and B
# served the reads from the same node (SHOW STATS).
#
# Then, when valgrind is installed (INSTRUCTIONS=0 skips it), A and B run once
# more under callgrind for INSTRUCTION_TXNS -S transactions each: the user-space
# instructions the proxy executes per transaction do not depend on what else
# runs on the machine, unlike CPU time, and the tenant functions' share shows
# where B's extra work goes. See bench/README.md.
#
# Usage (as root):  bench/tenant_bench.sh
#
# Environment (besides bench/lib.sh's): CLIENTS (16), THREADS (2), DURATION (10),
# WARMUP (3), ROUNDS (3), SCALE (10), REPLICAS (1; 1 or 2), TENANT_ENTRIES (1000),
# TENANT (t42), TENANT_VIA (setting | pgregion), TENANT_SOURCE (config | mapping),
# INSTRUCTIONS (1 if valgrind is
# installed), INSTRUCTION_TXNS (6000), BENCH_OUT.
set -euo pipefail
REPLICAS=${REPLICAS:-1} # before lib.sh, whose default is 0
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-10}
TENANT_ENTRIES=${TENANT_ENTRIES:-1000}
TENANT=${TENANT:-t42}
TENANT_VIA=${TENANT_VIA:-setting}
TENANT_SOURCE=${TENANT_SOURCE:-config}
INSTRUCTIONS=${INSTRUCTIONS:-$(command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null && echo 1 || echo 0)}
INSTRUCTION_TXNS=${INSTRUCTION_TXNS:-6000}
SETTING=app.tenant_id
ADMIN_USER=ops
ADMIN_PASSWORD=opsecret

[[ $REPLICAS == 1 || $REPLICAS == 2 ]] || die "REPLICAS must be 1 or 2"
((ROUNDS >= 1 && ROUNDS <= 20)) || die "ROUNDS must be 1..20"
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be 1..600 seconds"
((TENANT_ENTRIES >= 1 && TENANT_ENTRIES <= 1000000)) || die "TENANT_ENTRIES must be 1..1000000"
[[ $TENANT_SOURCE == config || $TENANT_SOURCE == mapping ]] ||
  die "TENANT_SOURCE must be config or mapping, not '$TENANT_SOURCE'"
((TENANT_ENTRIES <= 100000)) || [[ $TENANT_SOURCE == mapping ]] ||
  die "more than 100000 [[tenants]] entries: use TENANT_SOURCE=mapping"
((INSTRUCTION_TXNS >= 100 && INSTRUCTION_TXNS <= 100000)) || die "INSTRUCTION_TXNS must be 100..100000"
if [[ $INSTRUCTIONS == 1 ]] && ! command -v callgrind_annotate >/dev/null; then
  die "INSTRUCTIONS=1 needs valgrind (apt-get install valgrind)"
fi
case "$TENANT_VIA" in
  setting) TENANT_OPTION="-c $SETTING=$TENANT" ;;
  pgregion) TENANT_OPTION="-c pgregion.tenant=$TENANT" ;;
  *) die "TENANT_VIA must be setting or pgregion, not '$TENANT_VIA'" ;;
esac
[[ $TENANT =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || die "TENANT must be a plain word (letters, digits, _ . -)"

REGIONS=(us-east eu-west ap-south)
# shellcheck disable=SC2034  # read by start_pgregion (bench/lib.sh)
PGR_PROXY_REGION=eu-west
PGR_NODE_REGIONS="${REGIONS[*]:0:$((REPLICAS + 1))}"
LOCAL_REPLICA=replica1 # the eu-west replica: where A sends every -S read

# The part of the config A and B share beyond lib.sh's: an admin console user
# (SHOW STATS, SHOW TENANTS; the console adds nothing per unit of work).
COMMON_TOML=$(printf '[[users]]\nname = "%s"\npassword = "%s"\nauth = "%s"\nadmin = true\n' \
  "$ADMIN_USER" "$ADMIN_PASSWORD" "$AUTH")

# B's tenancy: TENANT_ENTRIES entries t0, t1, ... with policies that cycle
# through the kinds an operator writes; TENANT itself (added if its number is
# not among them) prefers eu-west.
tenancy_toml() {
  local far=ap-south # a region other than eu-west with a replica; us-east has only the primary
  ((REPLICAS == 2)) || far=us-east
  printf '[tenancy]\nsetting = "%s"\n' "$SETTING"
  if [[ $TENANT_SOURCE == mapping ]]; then
    # The rows come from bench_tenants (made after pgbench -i, see below).
    printf 'query = "select id, prefer, allow from bench_tenants"\ndatabase = "%s"\n' "$APP_DB"
    return
  fi
  local i id seen=0
  for ((i = 0; i < TENANT_ENTRIES; i++)); do
    id=t$i
    printf '\n[[tenants]]\nid = "%s"\n' "$id"
    if [[ $id == "$TENANT" ]]; then
      seen=1
      printf 'prefer_regions = ["eu-west"]\n'
      continue
    fi
    case $((i % 4)) in
      0) printf 'prefer_regions = ["eu-west"]\n' ;;
      1) printf 'prefer_regions = ["%s", "eu-west"]\n' "$far" ;;
      2) printf 'allow_regions = ["eu-west", "us-east"]\n' ;;
      3) printf 'prefer_regions = ["eu-west"]\nallow_regions = ["eu-west"]\n' ;;
    esac
  done
  if ((seen == 0)); then printf '\n[[tenants]]\nid = "%s"\nprefer_regions = ["eu-west"]\n' "$TENANT"; fi
}

bench_init
start_cluster
start_pgregion tenants-off "$COMMON_TOML"
A_PORT=$PGR_PORT A_PID=$PGR_PID
start_pgregion tenants-on "$COMMON_TOML"$'\n\n'"$(tenancy_toml)"
B_PORT=$PGR_PORT B_PID=$PGR_PID
# The two configs differ only in tenancy (and the listen port): check it.
config_diff=$(diff <(sed '/^listen = /d' "$BENCH_WORK/tenants-off/pgregion.toml") \
  <(sed '/^listen = /d' "$BENCH_WORK/tenants-on/pgregion.toml") || true)
if grep -q '^<' <<<"$config_diff"; then
  die "B's config is not A's plus tenancy (see $BENCH_WORK/tenants-*/pgregion.toml)"
fi
if [[ $TENANT_SOURCE == mapping ]]; then
  TENANT_DESC="a [tenancy] query mapping of $TENANT_ENTRIES rows"
else
  TENANT_DESC="$(grep -c '^\[\[tenants\]\]' "$BENCH_WORK/tenants-on/pgregion.toml") [[tenants]] entries"
fi
log "B's config is A's plus $(grep -c '^>' <<<"$config_diff") lines: [tenancy] and $TENANT_DESC"
declare -A PORT=([A]=$A_PORT [B]=$B_PORT)
declare -A PID=([A]=$A_PID [B]=$B_PID)
CLK_TCK=$(getconf CLK_TCK)

log "pgbench -i -s $SCALE (directly on the primary)"
PGPASSWORD=$APP_PASSWORD pgbench -i -s "$SCALE" -q -h "$PG_HOST" -p "$PG_PORT" -U "$APP_USER" "$APP_DB" \
  >"$BENCH_WORK/pgbench_init.log" 2>&1 || { tail -n 20 "$BENCH_WORK/pgbench_init.log" >&2; die "pgbench -i failed"; }
if [[ $TENANT_SOURCE == mapping ]]; then
  # The same policies as tenancy_toml's entries, as rows; B's loader retries
  # every 5 s until the table exists.
  far=ap-south
  ((REPLICAS == 2)) || far=us-east
  psql_super >/dev/null <<SQL
CREATE TABLE bench_tenants (id text PRIMARY KEY, prefer text, allow text[]);
INSERT INTO bench_tenants
  SELECT 't' || i,
         CASE WHEN 't' || i = '$TENANT' OR i % 4 IN (0, 3) THEN 'eu-west'
              WHEN i % 4 = 1 THEN '$far,eu-west' END,
         CASE WHEN 't' || i = '$TENANT' THEN NULL
              WHEN i % 4 = 2 THEN '{eu-west,us-east}'::text[]
              WHEN i % 4 = 3 THEN '{eu-west}'::text[] END
  FROM generate_series(0, $TENANT_ENTRIES - 1) i;
INSERT INTO bench_tenants VALUES ('$TENANT', 'eu-west', NULL) ON CONFLICT (id) DO NOTHING;
GRANT SELECT ON bench_tenants TO PUBLIC;
SQL
fi
psql_super -c 'CHECKPOINT' >/dev/null
# The replicas must have the tables before reads go there (bounded wait).
for port in $REPLICA_PORTS; do
  n=""
  for ((i = 0; i < 600; i++)); do
    n=$(PGPASSWORD=$PG_SUPERPASS psql -X -Atq -h "$PG_HOST" -p "$port" -U "$PG_SUPERUSER" \
      -d "$APP_DB" -c 'SELECT count(*) FROM pgbench_branches' 2>/dev/null || true)
    [[ $n == "$SCALE" ]] && break
    sleep 0.1
  done
  [[ $n == "$SCALE" ]] || die "the replica on port $port did not replay pgbench -i within 60 s"
done
sleep 2 # the health checkers have discovered roles by now (interval 500 ms)

# admin TARGET SQL: a console command, unaligned, the header line first ("a|b|c").
admin() {
  PGPASSWORD=$ADMIN_PASSWORD PGCONNECT_TIMEOUT=5 timeout 30 psql -X -Aq -P footer=off -F '|' \
    -h 127.0.0.1 -p "${PORT[$1]}" -U "$ADMIN_USER" -d pgregion -c "$2"
}
# Columns are found by name in the header, so added columns do not matter.
# shellcheck disable=SC2016  # awk's own $i
COLUMNS_AWK='NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }'
# Units routed to the local replica, and in all (SHOW STATS: node, ..., units).
stats_units() {
  admin "$1" 'SHOW STATS' | awk -F'|' -v n="$LOCAL_REPLICA" "$COLUMNS_AWK"'
    { all += $col["units"]; if ($col["node"] == n) here += $col["units"] }
    END { printf "%d %d\n", here, all }'
}
# The tenant's reads pgregion counted (SHOW TENANTS: tenant, ..., reads as
# "region=n region=n", ...); 0 without a directory.
tenant_reads() {
  admin "$1" 'SHOW TENANTS' | awk -F'|' -v t="$TENANT" "$COLUMNS_AWK"'
    $col["tenant"] == t { k = split($col["reads"], parts, " ")
      for (i = 1; i <= k; i++) { split(parts[i], kv, "="); sum += kv[2] } }
    END { printf "%d\n", sum }'
}
tenant_row() { # the header and the tenant's row, on one line
  admin "$1" 'SHOW TENANTS' | awk -F'|' -v t="$TENANT" 'NR == 1 || $1 == t' | paste -sd ' ' -
}

pgbench_s() { # pgbench_s TARGET SECONDS LOGFILE
  run_child "$3" env PGPASSWORD="$APP_PASSWORD" PGOPTIONS="$TENANT_OPTION" \
    timeout $(($2 + 60)) pgbench -n -S -c "$CLIENTS" -j "$THREADS" -T "$2" \
    -h 127.0.0.1 -p "${PORT[$1]}" -U "$APP_USER" "$APP_DB"
}

# The tenant resolves in B and only there (one psql session through each).
for t in A B; do
  PGPASSWORD=$APP_PASSWORD PGOPTIONS="$TENANT_OPTION" psql -X -Atq -h 127.0.0.1 -p "${PORT[$t]}" \
    -U "$APP_USER" -d "$APP_DB" -c 'SELECT 1' >/dev/null || die "a query through $t failed"
done
reads=$(tenant_reads A) || die "SHOW TENANTS failed on A"
[[ $reads == 0 ]] || die "A counted tenant reads: it should have no tenant directory"
# A mapping loads within one retry interval (5 s) of the table's creation.
for ((i = 0; i < 150; i++)); do
  reads=$(tenant_reads B) || die "SHOW TENANTS failed on B"
  ((reads >= 1)) && break
  sleep 0.1
  PGPASSWORD=$APP_PASSWORD PGOPTIONS="$TENANT_OPTION" psql -X -Atq -h 127.0.0.1 -p "${PORT[B]}" \
    -U "$APP_USER" -d "$APP_DB" -c 'SELECT 1' >/dev/null || die "a query through B failed"
done
((reads >= 1)) || die "B did not count $TENANT's read (SHOW TENANTS: $(tenant_row B))"
log "B resolves $TENANT ($TENANT_OPTION): $(tenant_row B)"

user_ticks() { awk '{ print $14 }' "/proc/$1/stat"; } # user time only, clock ticks
declare -A TPS CPU NTX LOCAL_PCT COUNTED USER_TICKS ALL_TICKS ALL_TXNS
for ((round = 1; round <= ROUNDS; round++)); do
  order=(A B)
  if ((round % 2 == 0)); then order=(B A); fi
  for t in "${order[@]}"; do
    pgbench_s "$t" "$WARMUP" "$BENCH_WORK/warmup_${t}_$round.log" || true
    log "round $round/$ROUNDS: pgbench -S -> pgregion $t (${DURATION}s)"
    out=$BENCH_WORK/run_${t}_$round.log
    units0=$(stats_units "$t") || die "SHOW STATS failed on $t"
    reads0=$(tenant_reads "$t") || die "SHOW TENANTS failed on $t"
    c0=$(cpu_ticks "${PID[$t]}")
    u0=$(user_ticks "${PID[$t]}")
    pgbench_s "$t" "$DURATION" "$out" || die "pgbench failed through $t (see $out)"
    c1=$(cpu_ticks "${PID[$t]}")
    u1=$(user_ticks "${PID[$t]}")
    reads1=$(tenant_reads "$t") || die "SHOW TENANTS failed on $t"
    units1=$(stats_units "$t") || die "SHOW STATS failed on $t"
    read -r here0 all0 <<<"$units0"
    read -r here1 all1 <<<"$units1"
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out")
    ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    nfail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    [[ -n $tps && -n $ntx && ${nfail:-0} == 0 && $ntx -gt 0 ]] ||
      die "failed transactions through $t (see $out)"
    key=$t$round
    TPS[$key]=$tps
    NTX[$key]=$ntx
    CPU[$key]=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$ntx" 'BEGIN {printf "%.2f", t / hz / n * 1e6}')
    LOCAL_PCT[$key]=$(awk -v h=$((here1 - here0)) -v a=$((all1 - all0)) \
      'BEGIN {printf "%.1f", (a > 0 ? 100 * h / a : 0)}')
    COUNTED[$key]=$((reads1 - reads0))
    USER_TICKS[$t]=$((${USER_TICKS[$t]:-0} + u1 - u0))
    ALL_TICKS[$t]=$((${ALL_TICKS[$t]:-0} + c1 - c0))
    ALL_TXNS[$t]=$((${ALL_TXNS[$t]:-0} + ntx))
    if [[ $t == B ]]; then
      # Every -S transaction is one read of the tenant; pgbench's count excludes
      # the statements cut off when -T ends, pgregion's does not.
      if ((COUNTED[$key] < ntx * 99 / 100)); then
        die "B counted ${COUNTED[$key]} reads of $TENANT for $ntx transactions: the tenant did not resolve"
      fi
    elif ((COUNTED[$key] != 0)); then
      die "A counted tenant reads"
    fi
    log "  tps $tps, ${CPU[$key]} µs CPU/txn, ${LOCAL_PCT[$key]}% of units on $LOCAL_REPLICA (eu-west), $TENANT reads counted: ${COUNTED[$key]}"
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR % 2) printf "%.6g", v[(NR + 1) / 2]; else printf "%.6g", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- Instructions per transaction under callgrind (optional).
# The tenant functions whose inclusive instructions the report lists.
CG_FUNCTIONS=(
  "ClientSession::UnitRouteContext()"
  "ClientSession::ResolveTenant("
  "SessionState::EffectiveValue"
  "TenantDirectory::Lookup("
  "ClientSession::DecideRoute("
  "routing::Router::Decide("
  "ClientSession::CountTenantRead("
  "Metrics::TenantRead("
  "TenantDirectory::CountRead("
)
declare -A CG_TOTAL CG_FN
if [[ $INSTRUCTIONS == 1 ]]; then
  # pgregion under callgrind when it serves (--config), the plain binary for
  # --check and --version.
  cg_dir=$BENCH_WORK/callgrind
  mkdir -p "$cg_dir"
  cat >"$cg_dir/pgregion" <<EOF
#!/bin/sh
for a in "\$@"; do
  if [ "\$a" = --config ]; then
    exec valgrind --tool=callgrind --callgrind-out-file=$cg_dir/callgrind.out.%p "$PGREGION_BIN" "\$@"
  fi
done
exec "$PGREGION_BIN" "\$@"
EOF
  chmod +x "$cg_dir/pgregion"
  real_bin=$PGREGION_BIN
  PGREGION_BIN=$cg_dir/pgregion
  log "instructions: A and B again under callgrind, $INSTRUCTION_TXNS -S transactions each"
  start_pgregion tenants-off-callgrind "$COMMON_TOML"
  PORT[A]=$PGR_PORT PID[A]=$PGR_PID
  start_pgregion tenants-on-callgrind "$COMMON_TOML"$'\n\n'"$(tenancy_toml)"
  PORT[B]=$PGR_PORT PID[B]=$PGR_PID
  PGREGION_BIN=$real_bin
  cg_clients=4
  for t in A B; do
    # Warm: server connections, the classifier's memo, the tenant's read counts.
    run_child "$cg_dir/warmup_$t.log" env PGPASSWORD="$APP_PASSWORD" PGOPTIONS="$TENANT_OPTION" \
      timeout 300 pgbench -n -S -c "$cg_clients" -j 1 -t 200 -h 127.0.0.1 -p "${PORT[$t]}" \
      -U "$APP_USER" "$APP_DB" || die "pgbench failed through $t under callgrind (see $cg_dir/warmup_$t.log)"
    timeout 60 callgrind_control -z "${PID[$t]}" >/dev/null 2>&1 || die "callgrind_control -z failed on $t"
    run_child "$cg_dir/run_$t.log" env PGPASSWORD="$APP_PASSWORD" PGOPTIONS="$TENANT_OPTION" \
      timeout 600 pgbench -n -S -c "$cg_clients" -j 1 -t $((INSTRUCTION_TXNS / cg_clients)) \
      -h 127.0.0.1 -p "${PORT[$t]}" -U "$APP_USER" "$APP_DB" ||
      die "pgbench failed through $t under callgrind (see $cg_dir/run_$t.log)"
    timeout 60 callgrind_control -d "${PID[$t]}" >/dev/null 2>&1 || die "callgrind_control -d failed on $t"
    ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$cg_dir/run_$t.log")
    dump=$cg_dir/callgrind.out.${PID[$t]}.1 # the first dump of that process
    for ((i = 0; i < 100; i++)); do           # written asynchronously (bounded wait)
      grep -q '^totals:' "$dump" 2>/dev/null && break
      sleep 0.1
    done
    grep -q '^totals:' "$dump" 2>/dev/null || die "no callgrind dump for $t ($dump)"
    [[ -n $ntx ]] || die "no transaction count in $cg_dir/run_$t.log"
    callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$dump" >"$cg_dir/annotate_$t.txt" 2>/dev/null ||
      die "callgrind_annotate failed on $dump"
    total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$cg_dir/annotate_$t.txt")
    CG_TOTAL[$t]=$(awk -v i="$total" -v n="$ntx" 'BEGIN {printf "%.0f", i / n}')
    for fn in "${CG_FUNCTIONS[@]}"; do
      CG_FN[$t|$fn]=$(awk -v f="$fn" -v n="$ntx" 'index($0, f) { v = $1; gsub(",", "", v); s += v }
        END { printf "%.0f", s / n }' "$cg_dir/annotate_$t.txt")
    done
    log "  $t: ${CG_TOTAL[$t]} instructions per transaction ($ntx transactions)"
  done
fi

REPORT=$BENCH_WORK/tenant_report.md
{
  echo "### pgbench -S: tenants configured (B) versus today's config (A), same run"
  echo
  machine_header
  echo "- primary ${REGIONS[0]} + $REPLICAS streaming replica(s) (${PGR_NODE_REGIONS#* }); pgregion in eu-west, two instances of one binary whose configs differ only in tenancy"
  echo "- B: [tenancy] setting = \"$SETTING\" and $TENANT_DESC; $TENANT prefers eu-west (so B routes where A does)"
  echo "- every client sends PGOPTIONS=\"$TENANT_OPTION\" to A and B alike; pgbench -S -c $CLIENTS -j $THREADS -T $DURATION after a ${WARMUP}s warm-up, scale $SCALE, $ROUNDS rounds alternating AB, BA, ..."
  echo
  echo "| round | A TPS | B TPS | B/A TPS | A µs CPU/txn | B µs CPU/txn | B/A CPU/txn | units on eu-west replica A / B | $TENANT reads counted by B / B transactions |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
  tps_ratios=() cpu_ratios=() a_tps=() b_tps=() a_cpu=() b_cpu=()
  for ((round = 1; round <= ROUNDS; round++)); do
    tr=$(awk -v b="${TPS[B$round]}" -v a="${TPS[A$round]}" 'BEGIN {printf "%.3f", b / a}')
    cr=$(awk -v b="${CPU[B$round]}" -v a="${CPU[A$round]}" 'BEGIN {printf "%.3f", b / a}')
    tps_ratios+=("$tr") cpu_ratios+=("$cr")
    a_tps+=("${TPS[A$round]}") b_tps+=("${TPS[B$round]}") a_cpu+=("${CPU[A$round]}") b_cpu+=("${CPU[B$round]}")
    printf '| %d | %.0f | %.0f | %.3f | %.2f | %.2f | %.3f | %s%% / %s%% | %d / %d |\n' "$round" \
      "${TPS[A$round]}" "${TPS[B$round]}" "$tr" "${CPU[A$round]}" "${CPU[B$round]}" "$cr" \
      "${LOCAL_PCT[A$round]}" "${LOCAL_PCT[B$round]}" "${COUNTED[B$round]}" "${NTX[B$round]}"
  done
  printf '| **median** | %.0f | %.0f | **%.3f** | %.2f | %.2f | **%.3f** | | |\n' \
    "$(median "${a_tps[@]}")" "$(median "${b_tps[@]}")" "$(median "${tps_ratios[@]}")" \
    "$(median "${a_cpu[@]}")" "$(median "${b_cpu[@]}")" "$(median "${cpu_ratios[@]}")"
  echo
  awk -v c="$(median "${cpu_ratios[@]}")" -v t="$(median "${tps_ratios[@]}")" 'BEGIN {
    printf "Median B/A: proxy CPU per transaction %.3f (%+.1f%%), TPS %.3f (%+.1f%%); goal: CPU per transaction within 5%% (<= 1.05): %s\n",
      c, (c - 1) * 100, t, (t - 1) * 100, (c <= 1.05 ? "met" : "not met in this run") }'
  for t in A B; do
    awk -v t="$t" -v u="${USER_TICKS[$t]}" -v a="${ALL_TICKS[$t]}" -v n="${ALL_TXNS[$t]}" -v hz="$CLK_TCK" \
      'BEGIN { printf "%s over all rounds: %.2f µs user + %.2f µs system per transaction (user %.0f%%)\n",
        t, u / hz / n * 1e6, (a - u) / hz / n * 1e6, (a > 0 ? 100 * u / a : 0) }'
  done
  printf '%s\n' "${cpu_ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    spread = v[NR] - v[1]
    printf "Per-round B/A CPU per transaction from %.3f to %.3f", v[1], v[NR]
    if (NR > 1 && spread > 0.05) printf ": a spread wider than the 5%% goal, so this run cannot decide it (a quiet machine, more ROUNDS)"
    printf ".\n" }'
  echo
  echo "CPU per transaction is the proxy's user + system time during the measured run divided by pgbench's"
  echo "transactions (/proc/PID/stat, $CLK_TCK ticks/s); it moves less than TPS when other work loads the"
  echo "machine. Each round ran A and B back to back: compare the per-round ratios, not rounds with each other."
  if [[ $INSTRUCTIONS == 1 ]]; then
    echo
    echo "User-space instructions pgregion executed per -S transaction under callgrind ($INSTRUCTION_TXNS"
    echo "transactions, 4 clients, after 800 unmeasured; the same on any machine load; the kernel's work for"
    echo "the sockets is not counted). Inclusive: a function with everything it calls."
    echo
    echo "| | A | B | B - A |"
    echo "|---|---:|---:|---:|"
    printf '| **whole proxy** | %d | %d | **%+d (%+.1f%%)** |\n' "${CG_TOTAL[A]}" "${CG_TOTAL[B]}" \
      $((CG_TOTAL[B] - CG_TOTAL[A])) "$(awk -v a="${CG_TOTAL[A]}" -v b="${CG_TOTAL[B]}" 'BEGIN {print (b / a - 1) * 100}')"
    for fn in "${CG_FUNCTIONS[@]}"; do
      printf '| %s | %d | %d | %+d |\n' "${fn%(}" "${CG_FN[A|$fn]}" "${CG_FN[B|$fn]}" \
        $((CG_FN[B|$fn] - CG_FN[A|$fn]))
    done
    echo
    awk -v u="${USER_TICKS[A]}" -v a="${ALL_TICKS[A]}" -v ia="${CG_TOTAL[A]}" -v ib="${CG_TOTAL[B]}" 'BEGIN {
      share = a > 0 ? u / a : 0; inc = ib / ia - 1
      printf "If user time grew with the instructions: B/A CPU per transaction about 1 + %.2f (A'"'"'s user share) x %.3f = %.3f.\n",
        share, inc, 1 + share * inc }'
  fi
} >"$REPORT"
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
