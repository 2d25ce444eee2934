#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every libFuzzer target of tests/fuzz for SECONDS each (default 600),
# up to nproc at once, under ASan and UBSan.  The corpus is kept between
# runs in a work directory outside the repository; a target that crashes
# is restarted for the rest of its time, and every crash, leak, timeout or
# out-of-memory input is copied out to the findings directory and listed,
# with the command that reproduces it.  Ends with execs and execs/s per
# target; exits 1 when anything was found.
#
#   scripts/fuzz.sh [SECONDS]
#   ARCHFS_FUZZ_WORK      work directory (default ${TMPDIR:-/tmp}/archfs-fuzz)
#   ARCHFS_FUZZ_FINDINGS  where findings go (default $ARCHFS_FUZZ_WORK/findings)
#   ARCHFS_FUZZ_BUILD     the clang build tree (default build-fuzz)
#   ARCHFS_FUZZ_JOBS      targets at once (default nproc)
#   ARCHFS_FUZZ_TARGETS   names to run, e.g. "archive read_zlib" (default all)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
secs=${1:-600}
work=${ARCHFS_FUZZ_WORK:-${TMPDIR:-/tmp}/archfs-fuzz}
findings=${ARCHFS_FUZZ_FINDINGS:-$work/findings}
build=${ARCHFS_FUZZ_BUILD:-build-fuzz}
jobs=${ARCHFS_FUZZ_JOBS:-$(nproc)}
case $secs in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;; esac
case $work in "$root" | "$root"/*) echo "fuzz: the work directory must be outside the repository" >&2; exit 2 ;; esac

if ! command -v clang >/dev/null; then
  echo "fuzz: clang is missing (scripts/setup.sh installs it)" >&2
  exit 2
fi
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false \
    >"$build.setup.log" 2>&1 || { cat "$build.setup.log"; exit 2; }
fi
ninja -C "$build" >/dev/null || { ninja -C "$build"; exit 2; }
mkdir -p "$work" "$findings"
python3 tests/fuzz/seeds.py "$work/seeds" >/dev/null || exit 2

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# The corpus and dictionary of a target: the read targets share the
# archive's dictionary and their own seed corpus.
corpus_of() { case $1 in read_*) echo read ;; *) echo "$1" ;; esac; }
dict_of() { case $1 in read_*) echo archive ;; *) echo "$1" ;; esac; }

# run_target NAME: runs it until its time is spent, restarting after each
# finding; its logs are $work/logs/NAME.N.log.
run_target() {
  local name=$1 exe=$build/tests/fuzz/fuzz_$1 end=$((SECONDS + secs)) n=0 left
  mkdir -p "$work/corpus/$name" "$work/artifacts/$name" "$work/logs"
  rm -f "$work/logs/$name".*.log
  while left=$((end - SECONDS)); [ "$left" -gt 0 ] && [ "$n" -lt 50 ]; do
    n=$((n + 1))
    "$exe" -max_total_time="$left" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$name/" -dict="tests/fuzz/$(dict_of "$name").dict" \
      "$work/corpus/$name" "$work/seeds/$(corpus_of "$name")" >"$work/logs/$name.$n.log" 2>&1 && break
  done
}

targets=()
for exe in "$build"/tests/fuzz/fuzz_*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  name=${exe##*/fuzz_}
  if [ -n "${ARCHFS_FUZZ_TARGETS:-}" ] && [[ " $ARCHFS_FUZZ_TARGETS " != *" $name "* ]]; then
    continue
  fi
  targets+=("$name")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $build/tests/fuzz" >&2; exit 2; }
echo "fuzz: ${#targets[@]} targets, ${secs}s each, $jobs at once; work in $work"
touch "$work/.start"
for name in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  run_target "$name" &
done
wait

# The summary: execs summed over a target's runs (a run cut short by a
# finding counts up to its last status line), execs/s over its whole
# time, findings copied out.
found=0
printf '%-14s %12s %10s %8s %6s %9s\n' target execs execs/s corpus runs findings
for name in "${targets[@]}"; do
  execs=0 runs=0 new=0
  for log in "$work/logs/$name".*.log; do
    [ -f "$log" ] || continue
    runs=$((runs + 1))
    e=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -z "$e" ] && e=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    execs=$((execs + ${e:-0}))
  done
  for a in "$work/artifacts/$name"/*; do
    [ -f "$a" ] && [ "$a" -nt "$work/.start" ] || continue
    mkdir -p "$findings/$name"
    cp "$a" "$findings/$name/"
    echo "  finding: $findings/$name/${a##*/}  (reproduce: $build/tests/fuzz/fuzz_$name $findings/$name/${a##*/})" >&2
    new=$((new + 1))
  done
  found=$((found + new))
  printf '%-14s %12d %10d %8d %6d %9d\n' "$name" "$execs" $((execs / (secs > 0 ? secs : 1))) \
    "$(find "$work/corpus/$name" -type f | wc -l)" "$runs" "$new"
done
[ "$found" -eq 0 ]
