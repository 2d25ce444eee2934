#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what is missing, builds archfs twice (plain and ASan+UBSan), runs
# the unit tests and the real-mount integration tests against each build,
# and ends with the line "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
passed=0
failed=0

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

note_fail() { echo "FAIL $*"; failed=$((failed + 1)); }

if ! scripts/setup.sh </dev/null; then
  note_fail "setup: installing dependencies failed"
  finish
fi

# build DIR [meson options...]: configures once (later runs re-apply the
# options), then builds; non-zero on failure.
build() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
  elif [ $# -gt 0 ]; then
    meson configure "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
  fi
  ninja -C "$dir" || return 1
}

# unit_tests DIR: runs meson's tests and counts one result per test program.
unit_tests() {
  local dir=$1 log counts p f
  meson test -C "$dir" --print-errorlogs --no-rebuild || true
  log=$dir/meson-logs/testlog.json
  if [ ! -s "$log" ]; then
    note_fail "unit tests in $dir: no test log"
    return
  fi
  counts=$(python3 - "$log" <<'PY'
import json, sys
ok = bad = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("result") in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r.get("result") != "SKIP":
        bad += 1
        print("FAIL unit:", r.get("name"), file=sys.stderr)
print(ok, bad)
PY
)
  read -r p f <<<"$counts"
  if [ "$((p + f))" -eq 0 ]; then
    note_fail "unit tests in $dir: none ran"
    return
  fi
  passed=$((passed + p)); failed=$((failed + f))
}

# integration DIR: mounts archives for real with DIR/archfs.
integration() {
  local dir=$1 out last p f
  out=$(mktemp)
  # Debian's python3: python3-psycopg2 is installed for it, whatever
  # python3 comes first in PATH.
  /usr/bin/python3 tests/integration/run.py --archfs "$root/$dir/archfs" </dev/null 2>&1 | tee "$out"
  last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  rm -f "$out"
  if [ -z "$last" ]; then
    note_fail "integration tests with $dir: no summary line"
    return
  fi
  p=${last%% passed*}; f=${last#*, }; f=${f%% failed*}
  if [ "$((p + f))" -eq 0 ]; then
    note_fail "integration tests with $dir: none ran"
    return
  fi
  passed=$((passed + p)); failed=$((failed + f))
}

run_suite() {
  local dir=$1; shift
  echo "== $dir"
  if ! build "$dir" "$@"; then
    note_fail "build of $dir"
    return
  fi
  unit_tests "$dir"
  integration "$dir"
}

# fuzz DIR: builds the libFuzzer targets (tests/fuzz) with clang under
# ASan/UBSan and runs each for ARCHFS_FUZZ_SECONDS (default 15) from the
# seed corpora, in a fresh corpus directory: one test per target, failed
# by any crash, leak, sanitizer report or broken property (the input is
# kept under DIR/fuzz-artifacts).  scripts/fuzz.sh runs them longer.
fuzz() {
  local dir=$1 secs=${ARCHFS_FUZZ_SECONDS:-15} exe name corpus
  echo "== $dir"
  if ! command -v clang >/dev/null; then
    echo "fuzz targets skipped: no clang"
    return
  fi
  if ! CC=clang build "$dir" -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false; then
    note_fail "build of $dir"
    return
  fi
  if ! python3 tests/fuzz/seeds.py "$dir/fuzz-seeds" >/dev/null; then
    note_fail "fuzz seed corpora (tests/fuzz/seeds.py)"
    return
  fi
  mkdir -p "$dir/fuzz-artifacts"
  for exe in "$dir"/tests/fuzz/fuzz_*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue
    name=${exe##*/fuzz_}
    corpus=$(mktemp -d)
    if "$exe" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
      -artifact_prefix="$dir/fuzz-artifacts/$name-" -dict="tests/fuzz/${name/#read_*/archive}.dict" \
      "$corpus" "$dir/fuzz-seeds/${name/#read_*/read}" >"$dir/fuzz-$name.log" 2>&1; then
      echo "ok fuzz: $name ($(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$dir/fuzz-$name.log") runs)"
      passed=$((passed + 1))
    else
      tail -n 40 "$dir/fuzz-$name.log"
      note_fail "fuzz: $name (log $dir/fuzz-$name.log, input in $dir/fuzz-artifacts)"
    fi
    rm -rf "$corpus"
  done
}

# The remote tests' S3 server, s3rver, from npm into a cache directory
# (tests/integration/remote_servers.py): installed here once, with no
# stdin; without it the remote tests fail, they do not skip.
if ! /usr/bin/python3 tests/integration/remote_servers.py s3rver-bin </dev/null >/dev/null; then
  note_fail "installing s3rver from npm for the remote tests"
fi

# A throwaway PostgreSQL cluster for the restore tests, on a Unix socket in
# a temporary directory, stopped on every way out.
pgdir=$(mktemp -d /tmp/archfs-pg.XXXXXX)
trap 'scripts/pgcluster.sh stop "$pgdir"' EXIT
if port=$(scripts/pgcluster.sh start "$pgdir"); then
  export ARCHFS_PG_HOST=$pgdir ARCHFS_PG_PORT=$port
  echo "== PostgreSQL test cluster on $pgdir port $port"
else
  note_fail "starting the PostgreSQL test cluster"
fi

# The plain tree decodes with ISA-L, the sanitizer tree with the zlib
# fallback: every run tests both decoders.
# Both trees compile in the restore engine's test hooks (slow steps to race
# against); a release build has none.
run_suite build -Dtest_hooks=true
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan -Dtest_hooks=true -Db_sanitize=address,undefined -Db_lundef=false -Dinflate=zlib
# The fuzz tree decodes with ISA-L and builds fuzz_read once more with
# zlib: both decoders are fuzzed.
fuzz build-fuzz
finish
