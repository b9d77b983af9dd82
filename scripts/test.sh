#!/usr/bin/env bash
# pgregion's test command (the one the README and .ci/run use).
#
# On Debian 12: installs missing packages with apt (as root, or through sudo),
# builds build/ with warnings as errors, runs the doctest unit tests and the
# pytest integration suite (real PostgreSQL 15 servers started by
# tests/harness/cluster.py), then does both again in an AddressSanitizer +
# UndefinedBehaviorSanitizer build (build-asan/, -O1, compiled at low priority
# while the normal integration suite runs), and finally runs each libFuzzer
# target in fuzz/ for a short time (build-fuzz/, clang, compiled at low
# priority after the sanitizer build; docs/FUZZING.md).
#
# The last line of output is always exactly `N passed, N failed`, summed over
# every stage from the real test results (pytest errors count as failed; a
# stage that crashes or produces no summary counts as one failure). Exit status
# is non-zero if anything failed.
#
# Environment:
#   PGREGION_SKIP_ASAN=1        skip the sanitizer pass
#   PGREGION_SKIP_FUZZ=1        skip the fuzz stage
#   PGREGION_FUZZ_SECONDS       seconds per fuzz target (default 12)
#   PGREGION_SKIP_INSTALL=1     never touch apt
#   PYTEST_ARGS="..."           extra pytest arguments (e.g. "-k pool -x")
#   PGREGION_BUILD_DIR          default build
#   PGREGION_ASAN_BUILD_DIR     default build-asan
#   PGREGION_TEST_LOGDIR        where stage logs go (default .tmp/test-logs)
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1

BUILD_DIR=${PGREGION_BUILD_DIR:-build}
ASAN_DIR=${PGREGION_ASAN_BUILD_DIR:-build-asan}
FUZZ_DIR=build-fuzz
abspath() { if [[ $1 == /* ]]; then echo "$1"; else echo "$REPO/$1"; fi; }
LOGDIR=${PGREGION_TEST_LOGDIR:-$REPO/.tmp/test-logs}
PYTHON=/usr/bin/python3
PYTEST_ARGS=${PYTEST_ARGS:-}
BUILD_TIMEOUT=${PGREGION_BUILD_TIMEOUT:-3600}
UNIT_TIMEOUT=600
INTEGRATION_TIMEOUT=${PGREGION_INTEGRATION_TIMEOUT:-1800}

PACKAGES=(build-essential meson ninja-build pkg-config libuv1-dev libpq-dev libssl-dev
  libabsl-dev prometheus-cpp-dev libtoml11-dev doctest-dev libpg-query-dev
  postgresql postgresql-client pgbouncer python3-psycopg python3-pytest openssl
  libpostgresql-jdbc-java prometheus clang libclang-rt-14-dev
  python3-psycopg2 python3-sqlalchemy python3-django)
# Driver tests (tests/integration/test_drivers.py): node-postgres needs node and npm,
# pgjdbc a JDK; installed only when the command is missing (see scripts/packages.sh).
COMMAND_PACKAGES=(node=nodejs npm=npm javac=default-jdk-headless)

TOTAL_PASSED=0
TOTAL_FAILED=0
SUMMARY=()

mkdir -p "$LOGDIR"

START_SECONDS=$SECONDS
# Each stage line carries the time since the start (CI's budget is 30 minutes).
say() { printf '==> [%s] %s\n' "$(elapsed)" "$*"; }
elapsed() {
  local s=$((SECONDS - START_SECONDS))
  printf '%d:%02d' $((s / 60)) $((s % 60))
}
slug() { tr -c 'A-Za-z0-9\n' '-' <<<"$1" | sed -E 's/-+/-/g; s/-$//'; }

record() {  # record STAGE PASSED FAILED [NOTE]
  TOTAL_PASSED=$((TOTAL_PASSED + $2))
  TOTAL_FAILED=$((TOTAL_FAILED + $3))
  SUMMARY+=("$(printf '%-28s %5d passed, %5d failed %s' "$1" "$2" "$3" "${4:-}")")
}

finish() {
  echo
  say "summary"
  local line
  for line in "${SUMMARY[@]}"; do echo "    $line"; done
  echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
  if ((TOTAL_FAILED > 0)); then exit 1; fi
  exit 0
}

# shellcheck source=scripts/packages.sh
source "$REPO/scripts/packages.sh"

# build DIR [meson -D options...]: configure (warnings as errors) and compile.
build() {
  local dir=$1
  shift
  local log="$LOGDIR/build-$(basename "$dir").log"
  say "building $dir $*"
  {
    if [[ -f $dir/build.ninja ]]; then
      # Already configured (maybe without --werror): turn the options on in place.
      local opts=(-Dwerror=true "$@")
      meson configure "$dir" "${opts[@]}" ||
        meson setup --wipe "$dir" --werror "$@"
    else
      meson setup "$dir" --werror "$@"
    fi
  } >"$log" 2>&1 || { tail -n 60 "$log"; return 1; }
  timeout "$BUILD_TIMEOUT" ninja -C "$dir" >>"$log" 2>&1 || { tail -n 80 "$log"; return 1; }
  say "built $dir"
}

# The libFuzzer build (fuzz/meson.build): clang, ASan+UBSan, no --werror since
# the tree's warning flags are tuned for GCC. Status in $LOGDIR/fuzz-build.rc so
# a background build can report it.
FUZZ_OPTS=(-Dfuzzing=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1)
rm -f "$LOGDIR/fuzz-build.rc"  # a stale status must not pass for this run's build
build_fuzz() {
  local log="$LOGDIR/build-$(basename "$FUZZ_DIR").log"
  say "building $FUZZ_DIR"
  {
    if [[ -f $FUZZ_DIR/build.ninja ]]; then
      meson setup --reconfigure "$FUZZ_DIR"
    else
      CC=clang CXX=clang++ meson setup "$FUZZ_DIR" "${FUZZ_OPTS[@]}"
    fi && timeout "$BUILD_TIMEOUT" ninja -C "$FUZZ_DIR"
  } >"$log" 2>&1
  local rc=$?
  echo "$rc" >"$LOGDIR/fuzz-build.rc"
  ((rc == 0)) && say "built $FUZZ_DIR" || tail -n 60 "$log"
  return "$rc"
}

# Each target for PGREGION_FUZZ_SECONDS through scripts/fuzz.sh; one test per
# target (a crash, leak, timeout or property violation fails it).
fuzz_stage() {
  local rc
  rc=$(cat "$LOGDIR/fuzz-build.rc" 2>/dev/null || echo 1)
  if [[ $rc != 0 ]]; then
    record "build $FUZZ_DIR" 0 1 "(build failed, see $LOGDIR)"
    return
  fi
  local log="$LOGDIR/fuzz.log"
  say "fuzz: each target for ${PGREGION_FUZZ_SECONDS:-12} s"
  env -u ASAN_OPTIONS -u LSAN_OPTIONS FUZZ_BUILD="$FUZZ_DIR" FUZZ_SECONDS="${PGREGION_FUZZ_SECONDS:-12}" \
    FUZZ_WORK="$LOGDIR/fuzz" bash "$REPO/scripts/fuzz.sh" >"$log" 2>&1
  local target execs result seen=0
  while read -r target execs result; do
    [[ $target == target || $target == total || -z $execs ]] && continue
    [[ $execs =~ ^[0-9]+$ ]] || continue
    seen=1
    if [[ $result == ok* ]]; then
      record "fuzz $target" 1 0 "($execs executions)"
    else
      record "fuzz $target" 0 1 "(see $log)"
    fi
  done < <(sed -n '/^target /,/^total /p' "$log")
  ((seen)) || { tail -n 40 "$log"; record "fuzz" 0 1 "(no results, see $log)"; }
}

# unit LABEL BINARY: run the doctest binary and parse its summary line
#   [doctest] test cases: N | N passed | N failed | N skipped
unit() {
  local label=$1 bin=$2
  local log="$LOGDIR/$(slug "$label").log"
  if [[ ! -x $bin ]]; then
    record "$label" 0 1 "(no binary $bin)"
    return
  fi
  say "$label: $bin"
  timeout "$UNIT_TIMEOUT" "$bin" --no-colors=true >"$log" 2>&1
  local rc=$?
  tail -n 30 "$log"
  local line passed failed
  line=$(grep -a '\[doctest\] test cases:' "$log" | tail -n 1)
  if [[ -z $line ]]; then
    record "$label" 0 1 "(crashed or no summary, exit $rc)"
    return
  fi
  passed=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$line")
  failed=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$line")
  [[ $passed =~ ^[0-9]+$ ]] || passed=0
  [[ $failed =~ ^[0-9]+$ ]] || failed=1
  if ((rc != 0 && failed == 0)); then
    record "$label" "$passed" 1 "(exit $rc with no failed test case)"
  else
    record "$label" "$passed" "$failed"
  fi
}

# integration LABEL PGREGION_BINARY: run pytest and parse
#   ... N failed, N passed, N error(s) in 12.34s ...
integration() {
  local label=$1 bin=$2
  shift 2  # the rest: extra pytest arguments
  local log="$LOGDIR/$(slug "$label").log"
  say "$label: pytest tests/integration with PGREGION_BIN=$bin"
  # shellcheck disable=SC2086
  PGREGION_BIN=$bin timeout --kill-after=30 "$INTEGRATION_TIMEOUT" \
    "$PYTHON" -m pytest tests/integration -p no:cacheprovider -q --color=no -rfE --durations=15 \
    "$@" $PYTEST_ARGS >"$log" 2>&1
  local rc=$?
  tail -n 90 "$log"
  local line passed failed errors
  line=$(grep -aE '([0-9]+ (passed|failed|errors?|skipped|deselected)|no tests ran).* in [0-9.]+s' \
    "$log" | tail -n 1)
  if [[ -z $line ]]; then
    record "$label" 0 1 "(pytest crashed, timed out or gave no summary, exit $rc)"
    return
  fi
  passed=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  failed=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  errors=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  failed=$((failed + errors))
  if ((rc != 0 && failed == 0)); then
    record "$label" "$passed" 1 "(pytest exit $rc with no failed test)"
  else
    record "$label" "$passed" "$failed" "$( ((errors > 0)) && echo "($errors errors)")"
  fi
}

if [[ ${PGREGION_SKIP_INSTALL:-0} != 1 ]]; then
  install_missing || { record "install packages" 0 1; finish; }
  # PostgreSQL 15's regression suite (Debian's source package, regress.so) for
  # tests/integration/test_pg_regress.py; cached after the first run.
  say "scripts/regress_setup.sh"
  bash "$REPO/scripts/regress_setup.sh" >"$LOGDIR/regress-setup.log" 2>&1 ||
    { tail -n 30 "$LOGDIR/regress-setup.log"; record "regress setup" 0 1; }
fi

SKIP_ASAN=${PGREGION_SKIP_ASAN:-0}
# -O1, the level AddressSanitizer's documentation suggests for reasonable speed:
# the release default -O3 more than doubled this build's compile time (5:14
# against 2:03 on a 2-vCPU VM) while the tests it runs are not speed-bound.
ASAN_OPTS=(-Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1)
ASAN_BUILD_PID=

# --- normal build
if build "$BUILD_DIR"; then
  if [[ $SKIP_ASAN != 1 ]]; then
    # The sanitizer build compiles at the lowest CPU priority while the normal
    # integration suite runs: that suite mostly waits (on servers, timeouts and
    # pgbench), so the compiler fills the idle time and CI saves the build's
    # minutes; at nice 19 the compiler gives way to anything the tests run.
    (
      renice -n 19 -p "$BASHPID" >/dev/null
      build "$ASAN_DIR" "${ASAN_OPTS[@]}"
      asan_rc=$?
      [[ ${PGREGION_SKIP_FUZZ:-0} == 1 ]] || build_fuzz
      exit "$asan_rc"
    ) &
    ASAN_BUILD_PID=$!
  fi
  unit "unit" "$BUILD_DIR/tests/unit_tests"
  integration "integration" "$(abspath "$BUILD_DIR")/proxy/pgregion"
else
  record "build $BUILD_DIR" 0 1 "(build failed, see $LOGDIR)"
fi

# --- sanitizer build
if [[ $SKIP_ASAN == 1 ]]; then
  say "PGREGION_SKIP_ASAN=1: skipping the sanitizer pass"
else
  # LeakSanitizer works in this environment (it needs ptrace-free stop-the-world,
  # which containers without CAP_SYS_PTRACE may refuse; then set detect_leaks=0).
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  if [[ -f $REPO/tests/lsan.supp && -z ${LSAN_OPTIONS:-} ]]; then
    export LSAN_OPTIONS=suppressions=$REPO/tests/lsan.supp:print_suppressions=0
  fi
  if [[ -n $ASAN_BUILD_PID ]]; then
    say "waiting for the $ASAN_DIR build"
    wait "$ASAN_BUILD_PID"
    asan_built=$?
  else
    build "$ASAN_DIR" "${ASAN_OPTS[@]}"
    asan_built=$?
  fi
  if ((asan_built == 0)); then
    unit "unit (asan+ubsan)" "$ASAN_DIR/tests/unit_tests"
    # The regression suite runs in the normal build only: under the sanitizers it
    # would take most of CI's time for the same statements.
    integration "integration (asan+ubsan)" "$(abspath "$ASAN_DIR")/proxy/pgregion" \
      --deselect tests/integration/test_pg_regress.py
  else
    record "build $ASAN_DIR" 0 1 "(build failed, see $LOGDIR)"
  fi
fi

# --- fuzz (built in the background above, or here when that did not run)
if [[ ${PGREGION_SKIP_FUZZ:-0} != 1 ]]; then
  [[ -n $ASAN_BUILD_PID ]] || build_fuzz
  fuzz_stage
fi

finish
