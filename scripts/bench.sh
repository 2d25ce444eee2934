#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmarks, as ratios against references measured in the same run.
# Now: sequential read of one large deflated db.sqlite through archfs built
# with ISA-L and with zlib, against `unzip -p` of the same entry; mount time
# of a 200,000-entry archive against `zipinfo -1`, and archfs's memory.
#   usage: scripts/bench.sh [SIZE_MB]   (default 512)
#          scripts/bench.sh pg [ROWS]   the PostgreSQL restore (scripts/bench-pg.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = pg ]; then
  shift
  exec scripts/bench-pg.sh "$@"
fi
size_mb=${1:-512}
scripts/setup.sh </dev/null
for v in isal zlib; do
  [ -f build-bench-$v/build.ninja ] || meson setup build-bench-$v -Dbuildtype=release -Dinflate=$v >/dev/null
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

echo "making a 200,000-entry archive ..."
python3 - "$work/many.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for i in range(200000):
        z.writestr("uploads/a%03d/b%02d/file%06d.txt" % (i % 500, i % 37, i), b"x%d" % i)
PY
mount_ls() {  # mount, first ls, unmount
  build-bench-isal/archfs "$work/many.zip" "$mnt"
  ls "$mnt"
  fusermount3 -u "$mnt"
}
t_zipinfo=$(median zipinfo -1 "$work/many.zip")
t_mount=$(median mount_ls)
build-bench-isal/archfs "$work/many.zip" "$mnt"
rss_of_daemon() { ps -o rss= -p "$(pgrep -n -x archfs)" | tr -d ' '; }
rss_mount=$(rss_of_daemon)
paths=$(find "$mnt" | wc -l)
rss_find=$(rss_of_daemon)
fusermount3 -u "$mnt"
split=$(build-bench-isal/tests/mountcost "$work/many.zip")

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

mount + first ls of a 200,000-entry archive, median of 3:
| command | seconds | ratio to zipinfo -1 |
|---|---|---|
| zipinfo -1 | $t_zipinfo | 1.00x |
| archfs mount + ls | $t_mount | $(ratio "$t_zipinfo" "$t_mount")x |
archfs resident memory: ${rss_mount} KiB after mounting, ${rss_find} KiB after find saw $paths paths
in-process split: $split
EOT
