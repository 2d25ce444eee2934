#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmarks, as ratios against references measured in the same run.
# Now: sequential read of one large deflated db.sqlite through archfs built
# with ISA-L and with zlib, against `unzip -p` of the same entry.
#   usage: scripts/bench.sh [SIZE_MB]   (default 512)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-512}
scripts/setup.sh </dev/null
for v in isal zlib; do
  [ -f build-bench-$v/build.ninja ] || meson setup build-bench-$v -Dtests=false -Dbuildtype=release -Dinflate=$v >/dev/null
  ninja -C build-bench-$v >/dev/null
done
work=$(mktemp -d /tmp/archfs-bench.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
trap 'mountpoint -q "$mnt" && fusermount3 -u "$mnt"; rm -rf "$work"' EXIT

echo "making a ${size_mb} MB db.sqlite archive ..."
python3 tests/fixtures/mkarchive.py --db-size $((size_mb << 20)) --uploads 10 "$work/backup.zip"
entry_mb=$(python3 -c "import zipfile,sys; print(zipfile.ZipFile(sys.argv[1]).getinfo('db.sqlite').file_size / 1e6)" "$work/backup.zip")

# median of 3 wall-clock runs of a command, in seconds
median() {
  local t=()
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc -l)")
  done
  printf '%s\n' "${t[@]}" | sort -g | sed -n 2p
}

read_mounted() {  # build: mount, read db.sqlite once with a cold FUSE cache, unmount
  "$1/archfs" "$work/backup.zip" "$mnt"
  cat "$mnt/db.sqlite"
  fusermount3 -u "$mnt"
}

t_unzip=$(median unzip -p "$work/backup.zip" db.sqlite)
t_isal=$(median read_mounted build-bench-isal)
t_zlib=$(median read_mounted build-bench-zlib)
mbps() { echo "scale=0; $entry_mb / $1" | bc -l; }
ratio() { echo "scale=2; $2 / $1" | bc -l; }

cat <<EOT

machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)
sequential read of db.sqlite ($entry_mb MB uncompressed, deflated), median of 3:
| reader | seconds | MB/s | archfs-isal speed-up |
|---|---|---|---|
| unzip -p | $t_unzip | $(mbps "$t_unzip") | $(ratio "$t_isal" "$t_unzip")x |
| archfs (zlib) | $t_zlib | $(mbps "$t_zlib") | $(ratio "$t_isal" "$t_zlib")x |
| archfs (ISA-L) | $t_isal | $(mbps "$t_isal") | 1.00x |
EOT
