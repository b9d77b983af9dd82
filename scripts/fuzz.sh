#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ (docs/FUZZING.md) for FUZZ_SECONDS each
# with its seed corpus and dictionary, prints executions per target and the
# total, and exits non-zero on any crash, leak, timeout or property violation.
#
#   bash scripts/fuzz.sh                 # long campaign, 600 s per target
#   FUZZ_SECONDS=15 bash scripts/fuzz.sh # smoke run
#   FUZZ_TARGETS="scram http_request" bash scripts/fuzz.sh
#
# New corpus entries go to a scratch directory (FUZZ_WORK, default
# .tmp/fuzz), never into the repository's seed corpora; crashing inputs are
# kept in $FUZZ_WORK/artifacts/.
set -u
# UndefinedBehaviorSanitizer findings are crashes, not log lines.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${FUZZ_BUILD:-build-fuzz}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-600}
WORK=${FUZZ_WORK:-$ROOT/.tmp/fuzz}
# Targets run side by side, one per core (at most 2 on this kind of machine);
# each is single-threaded.
PARALLEL=${FUZZ_PARALLEL:-$(nproc)}

if [[ ! -f $BUILD/build.ninja ]]; then
  CC=clang CXX=clang++ meson setup "$BUILD" -Dfuzzing=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1 || exit 1
else
  # A target file added since the last configure is only seen after a reconfigure.
  meson setup --reconfigure "$BUILD" >/dev/null || exit 1
fi

if [[ -n ${FUZZ_TARGETS:-} ]]; then
  targets=($FUZZ_TARGETS)
else
  targets=()
  for f in fuzz/*_fuzz.cc; do
    n=$(basename "$f" _fuzz.cc)
    targets+=("$n")
  done
fi
nice ninja -C "$BUILD" -j"$(nproc)" $(printf 'fuzz/%s_fuzz ' "${targets[@]}") || exit 1

mkdir -p "$WORK/artifacts"
run_one() {
  local t=$1
  local corpus=$WORK/corpus/$t
  mkdir -p "$corpus"
  local args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=25 -rss_limit_mb=2048
              -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$t-")
  [[ -f fuzz/$t.dict ]] && args+=(-dict="fuzz/$t.dict")
  local seeds=()
  [[ -d fuzz/corpus/$t ]] && seeds=("fuzz/corpus/$t")
  nice -n 10 "$BUILD/fuzz/${t}_fuzz" "${args[@]}" "$corpus" "${seeds[@]}" >"$WORK/$t.log" 2>&1
  echo $? >"$WORK/$t.rc"
}

running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if (( running >= PARALLEL )); then
    wait -n
    running=$((running - 1))
  fi
done
wait

total=0
failed=0
printf '%-18s %14s  %s\n' target executions result
for t in "${targets[@]}"; do
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$WORK/$t.log" | tail -1 | awk '{print $2}')
  execs=${execs:-0}
  rc=$(cat "$WORK/$t.rc" 2>/dev/null || echo 1)
  result=ok
  if [[ $rc != 0 ]] || grep -qE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:' "$WORK/$t.log"; then
    result="FAILED (rc $rc, log $WORK/$t.log)"
    failed=$((failed + 1))
  fi
  total=$((total + execs))
  printf '%-18s %14s  %s\n' "$t" "$execs" "$result"
done
printf '%-18s %14s  %s\n' total "$total" "$failed failed"
ls "$WORK/artifacts" 2>/dev/null | sed 's/^/artifact: /'
(( failed == 0 ))
