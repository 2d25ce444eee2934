# SPDX-License-Identifier: MIT
# Helpers the benchmark scripts share; sourced, with $mnt set to the mount
# point.  mount_fs FS IMAGE mounts in the foreground, in the background of
# the script (archfs keeps no seek points between mounts here: every mount
# is a fresh one); FS_PID is its process, umount_fs ends it.
mount_fs() {
  case $1 in
    archfs) build-bench-isal/archfs -f --index-dir none "$2" "$mnt" & ;;
    archfs-zlib) build-bench-zlib/archfs -f --index-dir none "$2" "$mnt" & ;;
    fuse-zip) fuse-zip -f -r "$2" "$mnt" & ;;
    archivemount) archivemount -f -o readonly "$2" "$mnt" 2>/dev/null & ;;
    squashfuse) squashfuse -f "$2" "$mnt" & ;;
    squashfuse_ll) squashfuse_ll -f "$2" "$mnt" & ;;
    *) echo "mount_fs: no filesystem $1" >&2; return 1 ;;
  esac
  FS_PID=$!
  wait_mounted "$1" "$2"
}
# wait_mounted NAME IMAGE: waits (60 s at most) until $FS_PID has mounted
# $mnt; non-zero, with a message, when it exits first or does not.
wait_mounted() {
  for _ in $(seq 1 6000); do
    mountpoint -q "$mnt" && return 0
    kill -0 "$FS_PID" 2>/dev/null || { echo "$1 failed to mount $2" >&2; return 1; }
    sleep 0.01
  done
  echo "$1 did not mount $2" >&2
  return 1
}
umount_fs() {
  fusermount3 -u "$mnt"
  wait "$FS_PID" 2>/dev/null || true
  FS_PID=
}
peak_kb() { awk '/VmHWM/ {print $2}' "/proc/$FS_PID/status"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
med() { sort -g | sed -n 2p; }  # the median of 3
fmt() { printf '%.3f' "$1"; }
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }
mb() { echo "scale=0; ${1:-0} / 1024" | bc -l; }
