#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Small files and whole-tree walks, as ratios against unzip and zipinfo in
# the same run (scripts/bench.sh small; also part of a full run):
#   - cp -r of 20,000 deflated 4 KiB uploads in 50 directories into tmpfs
#     (the destination costs nothing): on a fresh mount, then a second copy
#     from the same mount; against unzip of the same subtree, cp -r of an
#     extracted copy in tmpfs, fuse-zip, and squashfuse / squashfuse_ll on
#     a gzip squashfs image of the same files;
#   - mount + find | wc -l of a 200,000-entry archive in 2,000 directories,
#     against zipinfo -1, fuse-zip and archivemount.
# Medians of 3; prints the table and writes it into docs/performance.md.
#   usage: scripts/bench-small.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh </dev/null
missing=()
for p in fuse-zip archivemount squashfuse squashfs-tools; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
[ -f build-bench-isal/build.ninja ] || meson setup build-bench-isal -Dbuildtype=release -Dinflate=isal -Dtests=true >/dev/null
ninja -C build-bench-isal >/dev/null

work=$(mktemp -d /tmp/archfs-bench-small.XXXXXX)
shm=$(mktemp -d /dev/shm/archfs-bench-small.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
FS_PID=
cleanup() {
  mountpoint -q "$mnt" && fusermount3 -u "$mnt" || true
  [ -n "$FS_PID" ] && kill "$FS_PID" 2>/dev/null || true
  rm -rf "$work" "$shm"
}
trap cleanup EXIT

echo "making the archives (20,000 uploads of 4 KiB; 200,000 entries in 2,000 directories) ..."
/usr/bin/python3 - "$work" <<'PY'
import os, random, sys, zipfile
work = sys.argv[1]
rng = random.Random(13)
src = os.path.join(work, "src")
with zipfile.ZipFile(os.path.join(work, "small.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("manifest.json", '{"db_type": "sqlite"}')
    for i in range(20000):
        rel = "uploads/d%02d/f%05d.txt" % (i % 50, i)
        words = " ".join("w%x" % rng.getrandbits(16) for _ in range(700))
        data = (words * 2).encode()[:4096]
        full = os.path.join(src, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        z.write(full, rel)
with zipfile.ZipFile(os.path.join(work, "walk.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for i in range(200000):
        zi = zipfile.ZipInfo("uploads/d%04d/file%06d.txt" % (i % 2000, i), (2026, 11, 20, 10, 15, 2))
        zi.external_attr = 0o100644 << 16  # a file type in the mode: fuse-zip 0.5 refuses bare 0600
        zi.create_system = 3
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, b"x%d" % i)
PY
mksquashfs "$work/src" "$work/small.sqfs" -comp gzip -quiet -no-progress >/dev/null
rm -rf "$work/src"

. scripts/bench-lib.sh
fresh() { rm -rf "$shm/dest" && mkdir "$shm/dest"; }

# ---- cp -r of the small uploads into tmpfs
echo "cp -r of small files ..."
declare -A T1 T2 PEAK
runs=()
for _ in 1 2 3; do fresh; s=$(now); unzip -q "$work/small.zip" 'uploads/*' -d "$shm/dest"; runs+=("$(since "$s")"); done
t_unzip=$(printf '%s\n' "${runs[@]}" | med)
files=$(find "$shm/dest/uploads" -type f | wc -l)
mv "$shm/dest" "$shm/ref"
runs=()
for _ in 1 2 3; do fresh; s=$(now); cp -r "$shm/ref/uploads" "$shm/dest/"; runs+=("$(since "$s")"); done
t_cp_tmpfs=$(printf '%s\n' "${runs[@]}" | med)
for fs in archfs fuse-zip squashfuse squashfuse_ll; do
  img=$work/small.zip
  case $fs in squashfuse*) img=$work/small.sqfs ;; esac
  one=() two=()
  for _ in 1 2 3; do
    mount_fs $fs "$img"
    fresh
    s=$(now); cp -r "$mnt/uploads" "$shm/dest/u1"; one+=("$(since "$s")")
    s=$(now); cp -r "$mnt/uploads" "$shm/dest/u2"; two+=("$(since "$s")")
    PEAK[$fs]=$(peak_kb)
    umount_fs
    for u in u1 u2; do  # every byte right, both copies
      diff -rq "$shm/ref/uploads" "$shm/dest/$u" >/dev/null || { echo "$fs: the copy $u differs from unzip's" >&2; exit 1; }
    done
  done
  T1[$fs]=$(printf '%s\n' "${one[@]}" | med)
  T2[$fs]=$(printf '%s\n' "${two[@]}" | med)
done
rm -rf "$shm/dest" "$shm/ref"

# ---- mount + find | wc -l of 200,000 entries
echo "tree walk ..."
declare -A T_WALK
runs=()
for _ in 1 2 3; do s=$(now); zipinfo -1 "$work/walk.zip" >/dev/null; runs+=("$(since "$s")"); done
t_zipinfo=$(printf '%s\n' "${runs[@]}" | med)
for fs in archfs fuse-zip archivemount; do
  runs=()
  for _ in 1 2 3; do
    s=$(now); mount_fs $fs "$work/walk.zip"; paths=$(find "$mnt" | wc -l); runs+=("$(since "$s")")
    PEAK[$fs.walk]=$(peak_kb)
    umount_fs
    [ $fs = archfs ] || break  # the others once: they are the slow ones here
  done
  if [ ${#runs[@]} = 3 ]; then T_WALK[$fs]=$(printf '%s\n' "${runs[@]}" | med); else T_WALK[$fs]=${runs[0]}; fi
done

report=$(cat <<EOT
Run of $(date +%Y-%m-%d), \`scripts/bench.sh small\`. Machine: $(nproc) cores, Linux $(uname -r). archfs $(build-bench-isal/archfs --version | awk '{print $2}'), fuse-zip $(dpkg-query -W -f='${Version}' fuse-zip), squashfuse $(dpkg-query -W -f='${Version}' squashfuse), archivemount $(dpkg-query -W -f='${Version}' archivemount). Medians of 3 (fuse-zip and archivemount walks: one run).

### cp -r of $files small uploads into tmpfs

Deflated 4 KiB files in 50 directories; each filesystem freshly mounted,
then a second copy from the same mount. squashfuse reads a gzip squashfs
image of the same files.

| command | first copy, s | speed against unzip | second copy, s | speed against unzip | peak memory, MB |
|---|---|---|---|---|---|
| unzip 'uploads/*' (reference) | $(fmt $t_unzip) | 1.00 | | | |
| cp -r of an extracted copy in tmpfs | $(fmt $t_cp_tmpfs) | $(ratio $t_unzip $t_cp_tmpfs) | | | |
| archfs | $(fmt ${T1[archfs]}) | $(ratio $t_unzip ${T1[archfs]}) | $(fmt ${T2[archfs]}) | $(ratio $t_unzip ${T2[archfs]}) | $(mb ${PEAK[archfs]}) |
| fuse-zip | $(fmt ${T1[fuse-zip]}) | $(ratio $t_unzip ${T1[fuse-zip]}) | $(fmt ${T2[fuse-zip]}) | $(ratio $t_unzip ${T2[fuse-zip]}) | $(mb ${PEAK[fuse-zip]}) |
| squashfuse | $(fmt ${T1[squashfuse]}) | $(ratio $t_unzip ${T1[squashfuse]}) | $(fmt ${T2[squashfuse]}) | $(ratio $t_unzip ${T2[squashfuse]}) | $(mb ${PEAK[squashfuse]}) |
| squashfuse_ll | $(fmt ${T1[squashfuse_ll]}) | $(ratio $t_unzip ${T1[squashfuse_ll]}) | $(fmt ${T2[squashfuse_ll]}) | $(ratio $t_unzip ${T2[squashfuse_ll]}) | $(mb ${PEAK[squashfuse_ll]}) |

### Mount + find | wc -l of 200,000 entries in 2,000 directories ($paths paths)

| command | s | archfs against this | peak memory, MB |
|---|---|---|---|
| zipinfo -1 (reference) | $(fmt $t_zipinfo) | $(ratio ${T_WALK[archfs]} $t_zipinfo) | |
| archfs | $(fmt ${T_WALK[archfs]}) | 1.00 | $(mb ${PEAK[archfs.walk]}) |
| fuse-zip | $(fmt ${T_WALK[fuse-zip]}) | $(ratio ${T_WALK[archfs]} ${T_WALK[fuse-zip]}) | $(mb ${PEAK[fuse-zip.walk]}) |
| archivemount | $(fmt ${T_WALK[archivemount]}) | $(ratio ${T_WALK[archfs]} ${T_WALK[archivemount]}) | $(mb ${PEAK[archivemount.walk]}) |
EOT
)
echo
echo "$report"
printf '%s\n' "$report" | scripts/doc-table.py docs/performance.md bench-small
