#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpora of the fuzz targets (tests/fuzz), one directory
per corpus, from the fixture generator (tests/fixtures/mkarchive.py: every
variant it has, small) and a few archives and texts made here.  Nothing
binary is kept in the repository; scripts/test.sh and scripts/fuzz.sh run
this into their work directories.

CLI: seeds.py OUTDIR   (writes OUTDIR/{archive,read,manifest,pgdump,control,dburl,pointfile}/)

The read corpus is the archive corpus with a header of read operations in
front (fuzz_read.c describes them).
"""
import io
import json
import os
import random
import shutil
import struct
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import methods  # noqa: E402
import mkarchive  # noqa: E402

MAX_SEED = 256 * 1024  # larger seeds make slow inputs: left out
READ_OPS = 16          # fuzz_read.c: NOPS operations of 8 bytes


def fixture_archives():
    """(name, bytes) of every mkarchive variant, small (a few uploads)."""
    out = []
    for variant in mkarchive.VARIANTS:
        if variant == "many":  # 10,000 entries: too slow an input
            continue
        for db, uploads in (("none", 4), ("postgresql", 2), ("sqlite", 1)):
            if db != "none" and variant not in ("app", "stored", "zip64"):
                continue
            work = tempfile.mkdtemp(prefix="archfs-seeds-")
            try:
                path = os.path.join(work, "a.zip")
                mkarchive.make_archive(path, os.path.join(work, "src"), variant, db=db, uploads=uploads)
                data = open(path, "rb").read()
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if len(data) <= MAX_SEED:
                out.append(("%s-%s.zip" % (variant, db), data))
    return out


def zip_bytes(entries, **kw):
    """A ZIP of (name, data, compress_type) made with zipfile."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", **kw) as zf:
        for name, data, ctype in entries:
            zi = zipfile.ZipInfo(name, (2025, 11, 20, 10, 15, 2))
            zi.compress_type = ctype
            zi.external_attr = (0o40755 << 16) | 0x10 if name.endswith("/") else 0o100644 << 16
            zi.create_system = 3
            zf.writestr(zi, data)
    return buf.getvalue()


class Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes data descriptors."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


def extra_archives():
    """Shapes the fixtures do not have: entries past one seek span (1 MiB)
    that deflate small, mixed block types, empty entries, data descriptors,
    a comment, a stub before the archive."""
    D, S = zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED
    rng = random.Random(12)
    lines = b"".join(b"%04d some log line\n" % (i % 1000) for i in range(150000))  # 2.8 MiB, deflated 20 KiB
    mixed = b"".join(rng.randbytes(3000) + b"a" * 20000 for _ in range(8))
    out = [
        ("tiny.zip", zip_bytes([("manifest.json", b"{}", D), ("a.txt", b"hello\n", S),
                                ("uploads/b.txt", b"hello hello hello\n" * 20, D)])),
        ("long-lines.zip", zip_bytes([("manifest.json", b"{}", D), ("uploads/log.txt", lines, D)],
                                     compresslevel=9)),
        ("mixed-blocks.zip", zip_bytes([("uploads/mixed.bin", mixed, D), ("uploads/s.bin", mixed[:5000], S)])),
        ("empty-entries.zip", zip_bytes([("e0", b"", D), ("e1", b"", S), ("d/", b"", S), ("d/x", b"x", D)])),
    ]
    stream = Unseekable()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b'{"db_type": "sqlite"}')
        with zf.open("uploads/streamed.txt", "w") as w:
            w.write(b"written without seeking\n" * 300)
    out.append(("data-descriptor.zip", bytes(stream.buf)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.comment = b"an archive comment"
        zf.writestr("manifest.json", b"{}")
    out.append(("comment.zip", buf.getvalue()))
    stub = b"#!/bin/sh\nexit 0\n" + b"\0" * 200
    out.append(("sfx-stub.zip", stub + out[0][1]))
    out += method_archives(lines)
    return out


def method_archives(lines):
    """LZMA, XZ and zstd entries (xdecode.c): whole, beside a bzip2 one
    (libzip's decoder), cut short, and long ones (jumps far ahead)."""
    small = lines[:200000]
    entries = [("uploads/%s.txt" % k, small[:50000 + 20000 * i], k) for i, k in enumerate(("lzma", "xz", "zstd"))]
    out = []
    work = tempfile.mkdtemp(prefix="archfs-seeds-")
    try:
        path = os.path.join(work, "m.zip")
        methods.write_methods_zip(path, entries + [("uploads/b.txt", small[:30000], "bzip2")])
        out.append(("methods.zip", open(path, "rb").read()))
        cut = {name: (lambda p: p[:len(p) * 3 // 4]) for name, _, _ in entries}
        methods.write_methods_zip(path, entries, mangle=cut)
        out.append(("methods-cut.zip", open(path, "rb").read()))
        methods.write_methods_zip(path, [("big.txt", lines, k) for k in ("lzma", "xz", "zstd")])
        out.append(("methods-long.zip", open(path, "rb").read()))  # past a seek span
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def read_headers():
    """Operation headers for fuzz_read: sequential, backwards, far jumps,
    both shared streams and the private one."""
    def op(pick, flags, raw, length):
        return struct.pack("<BBIH", pick, flags, raw, length - 1)
    seq = b"".join(op(1, 4 if i else 0, 0, 4096) for i in range(READ_OPS))         # one stream, in order
    rng = random.Random(5)
    jumps = b"".join(op(rng.randrange(8), rng.randrange(32), rng.getrandbits(32), rng.randrange(1, 65537))
                     for _ in range(READ_OPS))
    ends = b"".join(op(i % 4, 8 | (i & 1), 100 * i, 300) for i in range(READ_OPS))  # near the end
    swap = b"".join(op(i % 2 + 1, (i & 1) | 4, 0, 65536) for i in range(READ_OPS))  # two streams evicting
    far = b"".join(op(1, 0x10 | 12, (i + 1) * 700000, 8192) for i in range(READ_OPS))  # private, far jumps
    # far, then back to a seek point, then on (both the shared and the private stream)
    back = b"".join(op(1, flags | 12, off, 4096) for flags in (0, 0x10)
                    for off in (2500000, 1500000, 2200000, 100, 1100000, 2600000, 1048577, 2097153))
    return [("seq", seq), ("jumps", jumps), ("ends", ends), ("swap", swap), ("far", far), ("back", back)]


def manifests():
    app = {"alembic_revision": "a1b2c3d4e5f6", "app_version": "4.2.0",
           "created_at": "2026-11-20T10:15:02", "db_type": "sqlite"}
    snap = dict(app, db_type="postgresql",
                archfs={"uploads": "/srv/app/uploads", "created": ["logos/new.png", "a/b/c.txt"]})
    texts = [json.dumps(app, indent=2, sort_keys=True), json.dumps(snap), "{}", "[]", "null", "",
             '{"db_type": null, "alembic_revision": null, "archfs": null}',
             '{"db_type": 5}', '{"archfs": {"created": "a"}}', '{"archfs": {"created": ["../x", "/abs", "a/"]}}',
             '{"created_at": "2026-11-20T10:15:02", "app_version": "\\u00e9\\ud83d\\ude00\\u0000"}',
             '{"a": [[[[[[[[[[{}]]]]]]]]]], "db_type": "sqlite"}']
    return [("m%02d.json" % i, t.encode()) for i, t in enumerate(texts)]


def pg_int(v, size=4):
    return bytes([1 if v < 0 else 0]) + abs(v).to_bytes(size, "little")


def pg_str(s, size=4):
    if s is None:
        return pg_int(-1, size)
    b = s.encode()
    return pg_int(len(b), size) + b


def pg_header(vmin, intsize=4, server="15.10 (Debian 15.10-0+deb12u1)", dump="15.10 (Debian 15.10-0+deb12u1)"):
    """A pg_dump custom-format header as ReadHead() reads it."""
    h = b"PGDMP" + bytes([1, vmin, 0, intsize, 8, 1])
    if vmin >= 15:
        h += b"\x00"
    elif vmin >= 4:
        h += pg_int(-1, intsize)
    h += b"".join(pg_int(v, intsize) for v in (2, 15, 10, 20, 10, 125, 0))
    h += pg_str("app", intsize)
    if vmin >= 10:
        h += pg_str(server, intsize) + pg_str(dump, intsize)
    return h + b"\x00" * 16


def pgdumps():
    out = [("v1.%d.dump" % v, pg_header(v)) for v in (8, 10, 12, 13, 14, 15, 16)]
    out.append(("intsize8.dump", pg_header(14, 8)))
    out.append(("noversions.dump", pg_header(14, 4, None, None)))
    out.append(("fixture.dump", b"PGDMP" + random.Random(42).randbytes(200)))  # what mkarchive writes
    out.append(("directory-format.dump", b"PGDMP\x01\x0e\x00\x04\x08\x05"))
    return out


def controls():
    cmds = [b"restore", b"restore\n", b"restore database\n", b"restore uploads", b"verify\n", b"cancel\n",
            b"  restore \t database \r\n", b"bogus\n", b"restore everything\n", b"\n\xc3\xa9",
            b"verify\xffcancel", b"restore\xffverify\xffcancel\xffrestore uploads"]
    return [("c%02d" % i, c) for i, c in enumerate(cmds)]


def dburls():
    urls = ["sqlite:////srv/app/instance/app.db", "sqlite:///app.db", "sqlite:////tmp/x.db?mode=ro",
            "postgresql://app:s3cret-pw@db.example:5432/app", "postgres://app@localhost/app?sslmode=require",
            "postgresql+psycopg2://app:p%40ss%2Fword@/app?host=/run/postgresql",
            "postgresql://app@h/app?password=s3cret-pw&sslpassword=key-pass&sslkey=/k/key.pem",
            "postgresql://app@h/app?pass%77ord=s3cret-pw", "postgresql://a:b:c@d@h/db",
            "host=/run/postgresql dbname=app user=app password='it\\'s secret'",
            "host=h dbname='password=s3cret-pw' passfile = /home/app/.pgpass",
            "dbname=postgresql://u:s3cret-pw@h/db", "mysql://root:pw@h/db", "", "=",
            "postgresql://[::1]:5432/app?connect_timeout=10&application_name=archfs"]
    out = [("u%02d" % i, u.encode()) for i, u in enumerate(urls)]
    out += [("lock1", b"sqlite:////tmp/x.db\x0060"), ("lock2", b"postgresql:///app\x00-1")]
    # A password spelt with a backslash escape whose value (19 x 0xaa) the
    # database name holds literally: the name is no secret and stays shown.
    out.append(("escaped-pw-in-dbname",
                b"host=h dbname='w" + b"\xaa" * 21 + b"\xff" * 6 + b"\xaa" * 6 + b"\xab" + b"\xaa" * 21
                + b"\xff\xff\xff\xa0" + b"\xff" * 16 + b"s3'password=\t" + b"\xaa" * 13 + b"\\" + b"\xaa" * 6
                + b"\x00\x00\x9d\x8fpg2://s"))
    # Text that spells a secret but is not where libpq reads it: a backslash
    # in a URI (no escape there), and "b" + "ss%2fw" whose "b" ends "%3b".
    # A password that the refusal's fixed words hold ("postgresql://").
    out.append(("secret-in-fixed-text", b"postg+eqql://a?password=postgr\x00"))
    out.append(("backslash-in-uri", b"postgresql://ap\xf1\xba\\s3cre[:s3cre[:@:-'\x00"))
    out.append(("pct-spelling-across-escape",
                b"pogresql+psycopg2://apt:bss%2Fw@ ord%2Fword@/p%40ssp%4bss%2Fword%2Fwordsp%3bs/home" + b"N" * 59
                + b"s%2Fword%2Fword))))))@/p%40ssp%4bss%2Fwordsp%3bss%2fword%2Fword))))))@/p%40ssp%4bssdsqlql"))
    return out


def pointfiles():
    """Points files for fuzz_pointfile.c's entry (its key, its data), without
    the trailing CRC-32 the target appends: none, and a few plausible points
    (packed windows of the entry's bytes; offsets near, not at, blocks)."""
    import zlib
    size, text = 1 << 20, b"SELECT id FROM time_entries WHERE user_id = 7;\n"
    data = bytes(text[i % 47] ^ (((i * 2654435761) >> 29) & 0xff) for i in range(size))
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
    z = c.compress(data) + c.flush()
    head = lambda n: (b"ARCHFSPT" + struct.pack("<II", 1, n) + struct.pack("<QqII", 4096, 1764000000, 0x1234abcd, 0)
                      + struct.pack("<QQQQII", 2, 1, size, len(z), zlib.crc32(data), 0))
    out = [("p0", head(0))]
    for n in (1, 3):
        body = b""
        for k in range(1, n + 1):
            at = 300000 * k
            c = zlib.compressobj(1, zlib.DEFLATED, -15)
            w = c.compress(data[at - 32768:at]) + c.flush()
            body += struct.pack("<QQBBHII", at, len(z) * at // size, k % 8, (0xff << (8 - k % 8)) & 0xff if k % 8 else 0,
                                0, 32768, len(w)) + w
        out.append(("p%d" % n, head(n) + body))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: seeds.py OUTDIR")
    root = sys.argv[1]
    archives = fixture_archives() + extra_archives()
    corpora = {
        "archive": archives,
        "read": [("%s-%s" % (h, name), hdr + data) for h, hdr in read_headers() for name, data in archives
                 if len(hdr + data) <= MAX_SEED and data],
        "manifest": manifests(), "pgdump": pgdumps(), "control": controls(), "dburl": dburls(),
        "pointfile": pointfiles(),
    }
    for corpus, seeds in corpora.items():
        d = os.path.join(root, corpus)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in seeds:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%-8s %4d seeds" % (corpus, len(seeds)))


if __name__ == "__main__":
    main()
