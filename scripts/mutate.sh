#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Plants known bugs one at a time in a scratch copy of the tree and reports
# which tests catch each: the suite's own test.  Not part of scripts/test.sh.
#
#   scripts/mutate.sh [--only NAME] [--tests SUBSTRING] [--repeat N]
#                     [--no-baseline] [--asan] [--timeout SECONDS] [--keep] [--list]
#
# The mutants are scripts/mutants/NN-name.patch: a first line saying what
# the bug is, then a unified diff against this tree.  Every patch is
# checked against the scratch copy before anything is built, and the run
# stops (exit 2) when one no longer applies: the code moved, the mutant
# must be rewritten.  Each mutant is applied, built (plain tree with
# -Dtest_hooks=true; --asan: the sanitizer tree instead), tested with the
# unit tests (meson test) and the real-mount integration tests (a private
# PostgreSQL cluster, as scripts/test.sh starts), then reverted.
#
#   --only NAME      one mutant ("06-pg-no-lock-table" or "pg-no-lock-table");
#                    repeatable
#   --tests SUB      only the unit and integration tests whose names hold SUB
#                    (or one of SUB's comma-separated parts)
#   --repeat N       run each mutant N times; caught only if every run failed
#   --no-baseline    skip the run of the unmutated tree (by default it runs
#                    first, and a test failing there catches nothing)
#   --timeout S      the longest one integration run may take (default 3600);
#                    a run cut short counts as failed ("integration: timed out")
#   --keep           leave the scratch copy and its build
#   --list           print the mutants and exit
#
# Prints progress on stderr and a table on stdout:
#   | planted bug | tests that failed | caught |
# Exit: 0 when every mutant run was caught, 1 when one was not, 2 when the
# run itself failed (a patch does not apply, a build fails, no cluster).

# shellcheck disable=SC2317 # cleanup and stop run from traps
set -uo pipefail
export LC_ALL=C # one sort order for sort and comm
root=$(cd "$(dirname "$0")/.." && pwd) || exit 2
mutdir=$root/scripts/mutants

only=()
tests=""
repeat=1
baseline=1
asan=0
timeout_s=3600
keep=0
list=0
while [ $# -gt 0 ]; do
  case $1 in
  --only) only+=("${2:?--only needs a name}"); shift 2 ;;
  --tests) tests=${2?--tests needs a substring}; shift 2 ;;
  --repeat) repeat=${2:?--repeat needs a number}; shift 2 ;;
  --no-baseline) baseline=0; shift ;;
  --asan) asan=1; shift ;;
  --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
  --keep) keep=1; shift ;;
  --list) list=1; shift ;;
  -h | --help) awk 'NR > 2 && !/^#/ { exit } NR > 2 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  *) echo "mutate: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $repeat in '' | *[!0-9]* | 0) echo "mutate: --repeat wants a positive number" >&2; exit 2 ;; esac

die() { echo "mutate: $*" >&2; exit 2; }
say() { echo "mutate: $*" >&2; }

# ------------------------------------------------------------ the mutants

# describe PATCH: its first line.
describe() { head -n 1 "$1"; }

# short NAME: the name without its number ("06-pg-no-lock-table" -> "pg-no-lock-table").
short() { echo "${1#[0-9][0-9]-}"; }

all=()
for p in "$mutdir"/*.patch; do
  [ -e "$p" ] && all+=("$(basename "$p" .patch)")
done
[ ${#all[@]} -gt 0 ] || die "no mutants in $mutdir"
if [ "$list" = 1 ]; then
  for m in "${all[@]}"; do printf '%-34s %s\n' "$m" "$(describe "$mutdir/$m.patch")"; done
  exit 0
fi
chosen=()
if [ ${#only[@]} -eq 0 ]; then
  chosen=("${all[@]}")
else
  for want in "${only[@]}"; do
    hit=""
    for m in "${all[@]}"; do
      if [ "$m" = "$want" ] || [ "$(short "$m")" = "$want" ]; then hit=$m; fi
    done
    [ -n "$hit" ] || die "no mutant named '$want' (see --list)"
    chosen+=("$hit")
  done
fi

# ------------------------------------------------------- the scratch copy

scratch=$(mktemp -d /tmp/archfs-mutate.XXXXXX) || die "mktemp failed"
logs=$(mktemp -d /tmp/archfs-mutate-logs.XXXXXX) || die "mktemp failed" # kept
pgdir=""
cleanup() {
  [ -n "$pgdir" ] && "$root/scripts/pgcluster.sh" stop "$pgdir"
  if [ "$keep" = 1 ]; then
    say "scratch copy kept: $scratch"
  else
    rm -rf "$scratch"
  fi
  say "logs: $logs"
}
trap cleanup EXIT
# timeout(1) runs the integration tests in a process group of its own,
# which a Ctrl-C at the terminal does not reach: the signal is passed on
# (timeout hands it to run.py, which unmounts what it mounted).
itest=""
stop() {
  [ -n "$itest" ] && kill -INT "$itest" 2>/dev/null && wait "$itest"
  exit 2
}
trap stop INT TERM
mkdir -p "$scratch/src"

# The tree as it is now, uncommitted changes included (tracked and
# untracked files git does not ignore), without .git or build output.
# shellcheck disable=SC2016 # $f is the inner shell's
(cd "$root" && git ls-files -z -co --exclude-standard) |
  (cd "$root" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
  tar -C "$root" --null -T - -cf - | tar -C "$scratch/src" -xf - || die "copying the tree failed"
src=$scratch/src

# Every patch must apply to the tree as it is: checked before any build.
for m in "${chosen[@]}"; do
  (cd "$src" && git apply --check "$mutdir/$m.patch") 2>"$logs/$m.check" ||
    die "mutant $m no longer applies (the code moved: rewrite scripts/mutants/$m.patch):
$(cat "$logs/$m.check")"
done

build=$src/build
opts=(-Dtest_hooks=true)
if [ "$asan" = 1 ]; then
  # shellcheck disable=SC2054 # one option's comma-separated value
  opts+=(-Db_sanitize=address,undefined -Db_lundef=false -Dinflate=zlib)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
say "scratch copy $src; building ($([ "$asan" = 1 ] && echo ASan/UBSan || echo plain) tree)"
meson setup "$build" "$src" "${opts[@]}" >"$logs/setup.log" 2>&1 || die "meson setup failed: see $logs/setup.log"

pgdir=$(mktemp -d /tmp/archfs-mutate-pg.XXXXXX) || die "mktemp failed"
port=$("$root/scripts/pgcluster.sh" start "$pgdir") || die "starting the PostgreSQL test cluster failed"
export ARCHFS_PG_HOST=$pgdir ARCHFS_PG_PORT=$port
say "PostgreSQL test cluster on $pgdir port $port"

# --------------------------------------------------------------- a run

# The unit tests whose names hold one of the comma-separated substrings
# of $tests (all when empty), as run.py -k reads it.
unit_names=()
list_units() {
  local n k keys
  IFS=, read -r -a keys <<<"$tests"
  [ ${#keys[@]} -eq 0 ] && keys=("")
  while read -r n; do
    n=${n##* }
    for k in "${keys[@]}"; do
      if [[ $n == *"$k"* ]]; then unit_names+=("$n"); break; fi
    done
  done < <(meson test -C "$build" --no-rebuild --list 2>/dev/null)
}

# run_suite LABEL: builds, runs the tests, and writes the names of the
# failed ones, one a line, to $logs/LABEL.failed.  A build failure is
# fatal: a mutant that does not compile tests nothing.
run_suite() {
  local label=$1 log=$logs/$1 failed=$logs/$1.failed rc
  : >"$failed"
  ninja -C "$build" >"$log.build" 2>&1 || die "$label: the build failed: see $log.build"
  if [ ${#unit_names[@]} -gt 0 ]; then
    rm -f "$build/meson-logs/testlog.json"
    meson test -C "$build" --no-rebuild --print-errorlogs "${unit_names[@]}" >"$log.unit" 2>&1
    if [ -s "$build/meson-logs/testlog.json" ]; then
      /usr/bin/python3 - "$build/meson-logs/testlog.json" >>"$failed" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP"):
        print("unit/" + r.get("name", "?"))
PY
    else
      echo "unit: no test log" >>"$failed"
    fi
  fi
  (cd "$src" && exec timeout -s INT -k 60 "$timeout_s" /usr/bin/python3 tests/integration/run.py \
    --archfs "$build/archfs" -k "$tests" </dev/null >"$log.integration" 2>&1) &
  itest=$!
  wait "$itest"
  rc=$?
  itest=""
  [ $rc -eq 124 ] && echo "integration: timed out" >>"$failed"
  sed -n 's/^FAIL \([^: ]*\).*/\1/p' "$log.integration" >>"$failed"
  grep -Eq '^[0-9]+ passed, [0-9]+ failed$' "$log.integration" || echo "integration: no summary line" >>"$failed"
  sort -u -o "$failed" "$failed"
}

# ------------------------------------------------------------- the runs

list_units
[ -n "$tests" ] && say "tests: the unit tests [${unit_names[*]}] and the integration tests matching '$tests'"

base_failed=$logs/baseline.failed
: >"$base_failed"
if [ "$baseline" = 1 ]; then
  say "baseline: the tree without a mutant"
  run_suite baseline
  if [ -s "$base_failed" ]; then
    say "WARNING: these fail without any mutant, and are not counted as catching one:"
    sed 's/^/  /' "$base_failed" >&2
  fi
fi

rows=()
all_caught=1
for m in "${chosen[@]}"; do
  counts=$logs/$m.counts
  : >"$counts"
  caught_runs=0
  for ((r = 1; r <= repeat; r++)); do
    label=$m.run$r
    say "$m (run $r of $repeat): $(describe "$mutdir/$m.patch")"
    (cd "$src" && git apply "$mutdir/$m.patch") 2>"$logs/$label.apply" || die "$m: the patch did not apply"
    run_suite "$label"
    grep -q "no work to do" "$logs/$label.build" && die "$m: the build did not pick up the patch (see $logs/$label.build)"
    (cd "$src" && git apply -R "$mutdir/$m.patch") 2>>"$logs/$label.apply" ||
      die "$m: reverting the patch failed: the scratch copy is no longer the tree"
    # what failed here and not without the mutant
    new=$(comm -23 "$logs/$label.failed" "$base_failed")
    if [ -n "$new" ]; then
      caught_runs=$((caught_runs + 1))
      echo "$new" >>"$counts"
    fi
    say "  failed: $(echo "$new" | paste -sd ' ')"
  done
  # names with how many runs they failed in; (k/N) when not every run
  names=$(sort "$counts" | uniq -c | awk -v n="$repeat" '$2 != "" {
      printf "%s%s%s", sep, $2, ($1 < n ? " (" $1 "/" n ")" : ""); sep = ", " }')
  if [ "$caught_runs" -eq "$repeat" ]; then
    verdict=yes
  else
    verdict=no
    all_caught=0
    [ "$repeat" -gt 1 ] && [ "$caught_runs" -gt 0 ] && verdict="no ($caught_runs/$repeat runs)"
  fi
  rows+=("| $m: $(describe "$mutdir/$m.patch") | ${names:-(none)} | $verdict |")
done

echo "| planted bug | tests that failed | caught |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ -s "$base_failed" ]; then
  echo
  echo "Failed without any mutant (not counted): $(paste -sd ' ' "$base_failed")"
fi
[ "$all_caught" = 1 ] && exit 0
exit 1
