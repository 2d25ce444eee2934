# SPDX-License-Identifier: MIT
# FILE N [SEED]: N random 4 KiB preads at 4 KiB-aligned offsets of FILE
# (seed 2026 by default); prints the seconds a read took on average.
# Shared by the benchmark scripts.
import os
import random
import sys
import time

path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 2026)
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
t = time.monotonic()
for _ in range(n):
    off = rng.randrange(0, size - 4096) // 4096 * 4096
    assert len(os.pread(fd, 4096, off)) == 4096
print("%.9f" % ((time.monotonic() - t) / n))
