#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Remote archives over loopback HTTPS (nginx, a self-signed certificate:
# tests/integration/remote_servers.py serve), one run each, against curl in
# the same run (scripts/bench.sh remote):
#   - mount + ls of a 200,000-entry archive: the requests nginx logged and
#     the time, against curl of just its central directory (one range
#     request of the last N bytes, N from the end of central directory);
#   - sequential read of a deflated db.dump of SIZE_MB, against curl of the
#     whole object into tmpfs then unzip -p (a file: unzip needs to seek),
#     and curl piped to bsdtar -xOf - (streamed, like archfs overlapping
#     transfer and inflate);
#   - 300 random 4 KiB reads in a stored entry and in the deflated db.dump
#     on a fresh mount: requests per read and ms per read;
#   - 100 random reads of the stored entry through a proxy that adds 20 ms
#     to each request: alone, beside another random reader, beside cat of
#     db.dump, on the same mount.
# Prints the table and writes it into docs/performance.md.
#   usage: scripts/bench-remote.sh [SIZE_MB]   (default 1024: the size of db.dump)
#   ARCHFS_BENCH_BINARY=PATH: the archfs to measure (default: a release build in build-bench-isal)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
reads=300
latency_ms=20   # what the proxy adds to each request
lat_reads=100
scripts/setup.sh </dev/null
dpkg-query -W -f='${Status}' libarchive-tools 2>/dev/null | grep -q "install ok installed" ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libarchive-tools </dev/null >/dev/null
# ARCHFS_BENCH_BINARY=PATH measures that archfs instead of a release build in build-bench-isal
archfs=${ARCHFS_BENCH_BINARY:-build-bench-isal/archfs}
if [ -z "${ARCHFS_BENCH_BINARY:-}" ]; then
  [ -f build-bench-isal/build.ninja ] || meson setup build-bench-isal -Dbuildtype=release -Dinflate=isal -Dtests=true >/dev/null
  ninja -C build-bench-isal archfs >/dev/null
fi

work=$(mktemp -d /tmp/archfs-bench-remote.XXXXXX)
shm=$(mktemp -d /dev/shm/archfs-bench-remote.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt" "$work/www"
FS_PID=
SRV_PID=
PROXY_PID=
cleanup() {
  mountpoint -q "$mnt" && fusermount3 -u "$mnt" || true
  [ -n "$FS_PID" ] && kill "$FS_PID" 2>/dev/null || true
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null || true
  rm -rf "$work" "$shm"
}
trap cleanup EXIT

echo "making the archives (200,000 entries; db.dump of $size_mb MB and a stored blob) ..."
/usr/bin/python3 - "$work/www" "$size_mb" <<'PY'
import os, random, sys, zipfile
www, size = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(29)
with zipfile.ZipFile(os.path.join(www, "walk.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for i in range(200000):
        zi = zipfile.ZipInfo("uploads/d%04d/file%06d.txt" % (i % 2000, i), (2026, 11, 20, 10, 15, 2))
        zi.external_attr = 0o100644 << 16
        zi.create_system = 3
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, b"x%d" % i)
with zipfile.ZipFile(os.path.join(www, "big.zip"), "w", zipfile.ZIP_DEFLATED, allowZip64=True) as z:
    z.writestr("manifest.json", '{"db_type": "postgresql"}')
    with z.open("db.dump", "w", force_zip64=True) as f:  # text rows: deflates to about half
        done = 0
        while done < size:
            block = b"".join(b"%d\t2026-11-20 09:00\t%s\n" % (done + k, rng.randbytes(24).hex().encode())
                             for k in range(8192))[:size - done]
            f.write(block)
            done += len(block)
    blob = min(size, 256 << 20)
    zi = zipfile.ZipInfo("blob.bin", (2026, 11, 20, 10, 15, 2))
    zi.compress_type = zipfile.ZIP_STORED
    with z.open(zi, "w", force_zip64=True) as f:  # random bytes, stored: reads cost only transfer
        left = blob
        while left:
            chunk = rng.randbytes(min(left, 1 << 20))
            f.write(chunk)
            left -= len(chunk)
PY
. scripts/bench-lib.sh

echo "starting nginx ..."
/usr/bin/python3 tests/integration/remote_servers.py serve "$work/www" "$work" </dev/null >"$work/serve.out" 2>&1 &
SRV_PID=$!
# wait_line FILE: waits (30 s at most) for the line a server prints once it
# listens; exits with what FILE holds when none comes
wait_line() {
  for _ in $(seq 1 3000); do [ -s "$1" ] && return 0; sleep 0.01; done
  echo "bench-remote: no line in $1: $(cat "$1")" >&2
  exit 1
}
wait_line "$work/serve.out"
read -r _ https_port ca alog <"$work/serve.out" || { cat "$work/serve.out" >&2; exit 1; }
[ -f "$ca" ] || { echo "bench-remote: nginx did not start: $(cat "$work/serve.out")" >&2; exit 1; }
base=https://127.0.0.1:$https_port
reqs() { wc -l <"$alog"; }

# mount_remote URL: archfs -f in the background on $mnt, no seek points kept
mount_remote() {
  "$archfs" -f --index-dir none --ca-file "$ca" "$1" "$mnt" &
  FS_PID=$!
  wait_mounted archfs "$1" || exit 1  # also inside $(...), where set -e is off
}

# ---- mount + ls of 200,000 entries, against curl of the central directory
echo "mount + ls ..."
cd_bytes=$(/usr/bin/python3 -c 'import sys, zipfile, os; z = zipfile.ZipFile(sys.argv[1]); print(os.path.getsize(sys.argv[1]) - z.start_dir)' "$work/www/walk.zip")
walk_size=$(stat -c %s "$work/www/walk.zip")
runs=()
for _ in 1 2 3; do
  s=$(now); curl -s --cacert "$ca" -r "-$cd_bytes" -o "$shm/cd" "$base/walk.zip"; runs+=("$(since "$s")")
  [ "$(stat -c %s "$shm/cd")" = "$cd_bytes" ] || { echo "curl fetched $(stat -c %s "$shm/cd") bytes, not $cd_bytes" >&2; exit 1; }
done
t_cd=$(printf '%s\n' "${runs[@]}" | med)
runs=() nreq=()
for _ in 1 2 3; do
  r0=$(reqs)
  s=$(now); mount_remote "$base/walk.zip"; n=$(ls "$mnt/uploads" | wc -l); runs+=("$(since "$s")")
  nreq+=($(($(reqs) - r0)))
  [ "$n" = 2000 ] || { echo "ls showed $n directories, not 2000" >&2; exit 1; }
  umount_fs
done
t_ls=$(printf '%s\n' "${runs[@]}" | med)
n_ls=$(printf '%s\n' "${nreq[@]}" | med)

# ---- sequential read of db.dump
echo "sequential read ..."
dump_bytes=$(/usr/bin/python3 -c 'import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).getinfo("db.dump").file_size)' "$work/www/big.zip")
big_size=$(stat -c %s "$work/www/big.zip")
want=$(unzip -p "$work/www/big.zip" db.dump | sha256sum)
runs=()
for _ in 1 2 3; do
  rm -f "$shm/big.zip"
  s=$(now); curl -s --cacert "$ca" -o "$shm/big.zip" "$base/big.zip" && unzip -p "$shm/big.zip" db.dump >/dev/null; runs+=("$(since "$s")")
done
rm -f "$shm/big.zip"
t_unzip=$(printf '%s\n' "${runs[@]}" | med)
runs=()
for _ in 1 2 3; do
  s=$(now); curl -s --cacert "$ca" "$base/big.zip" | bsdtar -xOf - db.dump >/dev/null; runs+=("$(since "$s")")
done
t_bsdtar=$(printf '%s\n' "${runs[@]}" | med)
runs=() nreq=()
for i in 1 2 3; do
  mount_remote "$base/big.zip"
  r0=$(reqs)
  s=$(now); cat "$mnt/db.dump" >/dev/null; runs+=("$(since "$s")")
  nreq+=($(($(reqs) - r0)))
  peak=$(peak_kb)
  if [ "$i" = 1 ]; then  # every byte right, checked after the timed read
    got=$(sha256sum <"$mnt/db.dump")
    [ "$got" = "$want" ] || { echo "archfs: db.dump differs from unzip's" >&2; exit 1; }
  fi
  umount_fs
done
t_seq=$(printf '%s\n' "${runs[@]}" | med)
n_seq=$(printf '%s\n' "${nreq[@]}" | med)

# ---- 300 random 4 KiB reads
echo "random reads ..."
declare -A T_RAND N_RAND
for e in blob.bin db.dump; do
  mount_remote "$base/big.zip"
  r0=$(reqs)
  T_RAND[$e]=$(/usr/bin/python3 scripts/randread.py "$mnt/$e" $reads 5)
  N_RAND[$e]=$(($(reqs) - r0))
  umount_fs
done
# ---- random reads beside other readers, over a link with latency: a proxy
# holds each request $latency_ms ms before nginx sees it (loopback has no
# round trip to stand for a network's).  $lat_reads random reads of blob.bin
# on a fresh mount, alone, then while another reader reads it at random,
# then while cat streams db.dump over and over, on the same mount.
echo "random reads beside other readers ($latency_ms ms a request) ..."
/usr/bin/python3 tests/integration/remote_servers.py delay-proxy "$https_port" "$latency_ms" </dev/null >"$work/proxy.out" 2>&1 &
PROXY_PID=$!
wait_line "$work/proxy.out"
read -r proxy_port <"$work/proxy.out"
# the other readers of lat_reads, one pass each
beside_cat() { cat "$mnt/db.dump" >/dev/null; }
beside_random() { /usr/bin/python3 scripts/randread.py "$mnt/blob.bin" 20 $RANDOM >/dev/null; }
# lat_reads [cat|random]: prints seconds per read, alone or beside cat of
# db.dump over and over, or beside other random reads of blob.bin
lat_reads() {
  local loop=
  mount_remote "https://127.0.0.1:$proxy_port/big.zip"
  rm -f "$shm/stop"
  if [ -n "${1:-}" ]; then
    (while [ ! -e "$shm/stop" ]; do "beside_$1" || break; done) &
    loop=$!
    sleep 0.5
  fi
  /usr/bin/python3 scripts/randread.py "$mnt/blob.bin" $lat_reads 7 || exit 1  # set -e is off in $(...)
  if [ -n "$loop" ]; then  # the loop ends after its current pass
    touch "$shm/stop"
    pkill -P "$loop" 2>/dev/null || true
    wait "$loop" 2>/dev/null || true
  fi
  umount_fs
}
t_lat_alone=$(lat_reads)
t_lat_random=$(lat_reads random)
t_lat_cat=$(lat_reads cat)
blob_mb=$(( $(/usr/bin/python3 -c 'import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).getinfo("blob.bin").file_size)' "$work/www/big.zip") >> 20 ))

ms() { printf '%.2f' "$(echo "$1 * 1000" | bc -l)"; }
mbps() { echo "scale=0; $dump_bytes / 1048576 / $1" | bc -l; }
per() { echo "scale=2; $1 / $reads" | bc -l | sed 's/^\./0./'; }
report=$(cat <<EOT
Run of $(date +%Y-%m-%d), \`scripts/bench.sh remote $size_mb\`. Machine: $(nproc) cores, Linux $(uname -r). archfs $("$archfs" --version | awk '{print $2}'), nginx $(dpkg-query -W -f='${Version}' nginx), curl $(curl --version | awk 'NR == 1 {print $2}'), bsdtar $(dpkg-query -W -f='${Version}' libarchive-tools). HTTPS on loopback (a self-signed certificate, \`--ca-file\`); requests counted in nginx's access log. Medians of 3; each archfs run is a fresh mount.

### Mount + ls of a 200,000-entry archive ($(( walk_size >> 20 )) MB, central directory $(( cd_bytes >> 10 )) KiB)

| command | requests | s | archfs against this |
|---|---|---|---|
| curl -r -$cd_bytes (the central directory alone, reference) | 1 | $(fmt $t_cd) | $(ratio $t_ls $t_cd) |
| archfs: mount + ls MNT/uploads | $n_ls | $(fmt $t_ls) | 1.00 |

### Sequential read of db.dump ($(( dump_bytes >> 20 )) MB, deflated; the object is $(( big_size >> 20 )) MB)

| reader | requests | s | MB/s | archfs speed-up (this / archfs) |
|---|---|---|---|---|
| curl -o (tmpfs) + unzip -p (reference) | 1 | $(fmt $t_unzip) | $(mbps $t_unzip) | $(ratio $t_unzip $t_seq) |
| curl \| bsdtar -xOf - (streamed) | 1 | $(fmt $t_bsdtar) | $(mbps $t_bsdtar) | $(ratio $t_bsdtar $t_seq) |
| archfs: cat MNT/db.dump (fresh mount) | $n_seq | $(fmt $t_seq) | $(mbps $t_seq) | 1.00 |

Every reader writes the entry to /dev/null; archfs's bytes were checked against unzip's after the first timed read. Peak memory of archfs: $(mb $peak) MB (\`--remote-cache\` at its default).

### $reads random 4 KiB reads, fresh mount

| entry | requests | requests per read | ms per read |
|---|---|---|---|
| blob.bin ($blob_mb MB, stored) | ${N_RAND[blob.bin]} | $(per ${N_RAND[blob.bin]}) | $(ms ${T_RAND[blob.bin]}) |
| db.dump ($(( dump_bytes >> 20 )) MB, deflated) | ${N_RAND[db.dump]} | $(per ${N_RAND[db.dump]}) | $(ms ${T_RAND[db.dump]}) |

### $lat_reads random 4 KiB reads of blob.bin beside other readers, $latency_ms ms a request

A proxy holds each request $latency_ms ms (\`remote_servers.py delay-proxy\`), as a network's round trip would; a fresh mount each.

| reads of blob.bin | ms per read | against alone |
|---|---|---|
| alone (reference) | $(ms $t_lat_alone) | 1.00 |
| while another reader reads blob.bin at random on the same mount | $(ms $t_lat_random) | $(ratio $t_lat_random $t_lat_alone) |
| while \`cat MNT/db.dump\` runs over and over on the same mount | $(ms $t_lat_cat) | $(ratio $t_lat_cat $t_lat_alone) |
EOT
)
echo
echo "$report"
printf '%s\n' "$report" | scripts/doc-table.py docs/performance.md bench-remote
