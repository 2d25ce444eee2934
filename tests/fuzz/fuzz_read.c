/* SPDX-License-Identifier: MIT */
/* Fuzz target: reads of archive entries at any offsets, as FUSE makes
 * them (afs_stream_pread), through both paths of a deflated entry: the
 * sequential decoder (ISA-L or zlib: meson builds this file once per
 * decoder it finds, fuzz_read_isal and fuzz_read_zlib) and the zlib
 * decoder that resumes at seek points.  Two streams share a registry whose
 * decoder pool holds one decoder, so that they evict each other between
 * reads; a third has seek points of its own.  Entries of the other
 * methods go through their decoders too (LZMA, XZ and zstd: xdecode.c;
 * bzip2: libzip), one forward pass restarted for a read behind it: the
 * checks below that need no reference decoding apply to them.
 *
 * Input: HDR_LEN bytes of read operations, then the ZIP file.  Each
 * operation is 8 bytes:
 *   [0]    which file (an index into the index's non-directory nodes)
 *   [1]    bit 0: stream 0 or 1; bit 4: the private stream instead;
 *          bit 1: close and reopen the stream first;
 *          bits 2-3: the offset: 0 raw % (size + 17), 1 where that
 *          stream's last read ended, 2 size - raw % 65537, 3 raw itself
 *   [2..5] raw, little-endian
 *   [6..7] length - 1, little-endian
 *
 * Every read is checked against a reference decoding of the entry made
 * here with zlib in one pass (raw bytes through afs_raw_*): an entry the
 * reference decodes whole, from all the compressed bytes the archive
 * states, to the right size and CRC-32, must read without error, byte
 * for byte; bytes a read returns from any entry must
 * be the reference's, and never lie past where the reference found the
 * data bad; an error is sticky; a read returns exactly the bytes up to
 * the entry's size. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "archive.h"
#include "decpool.h"
#include "fuzzutil.h"
#include "index.h"
#include "inflate.h"
#include "seekidx.h"
#include "stream.h"

#define NOPS 16
#define HDR_LEN (NOPS * 8)
#define REF_CAP (16u << 20) /* entries larger than this are read unchecked */
#define NSLOTS 3

/* What the reference decoding found for one node. */
struct ref {
	bool done;     /* computed */
	bool known;    /* the oracle applies (store or deflate, size <= REF_CAP) */
	bool complete; /* the whole entry decodes to its size and CRC-32 */
	uint64_t valid; /* bytes [0, valid) are the entry's data */
	unsigned char *bytes;
};

struct slot {
	struct afs_stream *s;
	uint32_t id;
	uint64_t end;  /* where its last read ended */
	bool failed;   /* a read failed (other than out of memory): sticky */
};

/* The entry's compressed bytes, at most cap of them, in *out (malloc'd). */
static size_t raw_bytes(struct afs_archive *a, uint32_t entry, uint64_t cap, unsigned char **out, bool *whole)
{
	struct afs_raw *r = NULL;
	size_t len = 0, got;
	unsigned char *buf = malloc(cap + 1);

	*whole = false;
	*out = buf;
	if (!buf || afs_raw_open(a, entry, &r) != AFS_OK)
		return 0;
	while (len <= cap) {
		if (afs_raw_read(r, buf + len, cap + 1 - len, &got) != AFS_OK)
			break;
		if (got == 0) {
			*whole = true;
			break;
		}
		len += got;
	}
	afs_raw_close(r);
	if (len > cap)
		*whole = false;
	return len;
}

/* Inflates in[0..inlen) into f->bytes (size bytes), setting f->valid and
 * whether it ends exactly at size. */
static bool ref_inflate(struct ref *f, const unsigned char *in, size_t inlen, bool whole, uint64_t size)
{
	unsigned char extra;
	z_stream z = { 0 };
	int rc = Z_OK;
	bool ended = false;

	if (inflateInit2(&z, -15) != Z_OK)
		return false;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)inlen;
	z.next_out = f->bytes;
	z.avail_out = (uInt)size;
	while (rc == Z_OK && z.avail_out > 0)
		rc = inflate(&z, Z_NO_FLUSH);
	f->valid = z.total_out;
	if (rc == Z_STREAM_END) {
		ended = true;
	} else if (rc == Z_OK || rc == Z_BUF_ERROR) {
		/* size bytes made: the stream must end here, with no byte more */
		z.next_out = &extra;
		z.avail_out = 1;
		rc = inflate(&z, Z_NO_FLUSH);
		ended = rc == Z_STREAM_END && z.avail_out == 1;
	}
	inflateEnd(&z);
	return ended && f->valid == size && whole;
}

/* The reference decoding of node id, computed on first use. */
static struct ref *ref_of(struct ref *refs, struct afs_archive *a, const struct afs_index *ix, uint32_t id)
{
	const struct afs_node *n = afs_index_node(ix, id);
	struct ref *f = &refs[id];
	unsigned char *raw = NULL;
	bool whole, ok;
	size_t len;

	if (f->done)
		return f;
	f->done = true;
	if ((n->method != AFS_METHOD_STORE && n->method != AFS_METHOD_DEFLATE) || n->size > REF_CAP ||
	    n->comp_size > REF_CAP)
		return f;
	f->bytes = malloc(n->size + 1);
	FZ_ASSERT(f->bytes, "out of memory");
	f->known = true;
	len = raw_bytes(a, n->entry, n->comp_size, &raw, &whole);
	whole = whole && len == n->comp_size; /* all the compressed bytes the archive states are there */
	if (n->method == AFS_METHOD_STORE) {
		f->valid = len < n->size ? len : n->size;
		memcpy(f->bytes, raw, f->valid);
		ok = f->valid == n->size && whole;
	} else {
		ok = ref_inflate(f, raw, len, whole, n->size);
	}
	free(raw);
	f->complete = ok && (uint32_t)crc32_z(0, f->bytes, (size_t)n->size) == n->crc;
	return f;
}

/* The offset an operation reads at. */
static uint64_t op_offset(const unsigned char *op, uint64_t size, uint64_t last_end)
{
	uint32_t raw = (uint32_t)op[2] | (uint32_t)op[3] << 8 | (uint32_t)op[4] << 16 | (uint32_t)op[5] << 24;

	switch (op[1] >> 2 & 3) {
	case 0: return size + 17 > size ? raw % (size + 17) : raw;
	case 1: return last_end;
	case 2: return size - (raw % 65537 < size ? raw % 65537 : size);
	default: return raw;
	}
}

/* One read through slot sl of node id, checked against the reference. */
static void check_read(struct slot *sl, const struct afs_node *n, struct ref *f, uint64_t off, size_t len,
		       unsigned char *buf)
{
	uint64_t want = off >= n->size ? 0 : n->size - off < len ? n->size - off : len;
	size_t got = 12345;
	enum afs_err err = afs_stream_pread(sl->s, buf, len, off, &got);

	if (err != AFS_OK) {
		FZ_ASSERT(got == 0, "a failed read returned %zu bytes", got);
		FZ_ASSERT(afs_stream_error(sl->s, err) != NULL, "no reason for a failed read");
		FZ_ASSERT(err == AFS_E_NOMEM || !f->known || !f->complete,
			  "a read at %llu of an entry that decodes whole failed: %s", (unsigned long long)off,
			  afs_stream_error(sl->s, err));
		if (err != AFS_E_NOMEM)
			sl->failed = true;
		return;
	}
	FZ_ASSERT(!sl->failed, "a read succeeded after a failed one (at %llu)", (unsigned long long)off);
	FZ_ASSERT(got == want, "a read at %llu of %zu bytes returned %zu, not %llu (size %llu)",
		  (unsigned long long)off, len, got, (unsigned long long)want, (unsigned long long)n->size);
	sl->end = off + got;
	if (!f->known || got == 0)
		return;
	FZ_ASSERT(off + got <= f->valid, "a read of [%llu, %llu) succeeded past the valid data (%llu bytes)",
		  (unsigned long long)off, (unsigned long long)(off + got), (unsigned long long)f->valid);
	FZ_ASSERT(memcmp(buf, f->bytes + off, got) == 0, "a read at %llu of %zu bytes differs from the data",
		  (unsigned long long)off, got);
}

/* Runs one operation: picks the file and the stream, then reads. */
static void run_op(const unsigned char *op, struct slot *slots, struct ref *refs, struct afs_archive *a,
		   const struct afs_index *ix, struct afs_seekreg *reg, const uint32_t *files, uint32_t nfiles,
		   unsigned char *buf)
{
	uint32_t id = files[op[0] % nfiles];
	const struct afs_node *n = afs_index_node(ix, id);
	struct slot *sl = &slots[op[1] & 0x10 ? 2 : op[1] & 1];
	size_t len = (size_t)(op[6] | op[7] << 8) + 1;
	uint64_t off;
	enum afs_err err;

	if (sl->s && (sl->id != id || (op[1] & 2))) {
		afs_stream_close(sl->s);
		sl->s = NULL;
	}
	if (!sl->s) {
		err = sl == &slots[2] ? afs_stream_open(a, ix, id, &sl->s)
				      : afs_stream_open_shared(a, ix, id, reg, &sl->s);
		FZ_ASSERT(err == AFS_OK, "opening a file node failed: %s", afs_strerror(err));
		*sl = (struct slot){ .s = sl->s, .id = id };
	}
	off = op_offset(op, n->size, sl->end);
	check_read(sl, n, ref_of(refs, a, ix, id), off, len, buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The decoder linked in is the one this target is named for. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FZ_ASSERT(strcmp(afs_inflate_backend(), FZ_DECODER) == 0, "built for %s, decodes with %s", FZ_DECODER,
		  afs_inflate_backend());
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct afs_archive *a;
	struct afs_index *ix;
	struct afs_seekreg *reg;
	struct slot slots[NSLOTS] = { 0 };
	struct ref *refs;
	uint32_t *files, nfiles = 0, count;
	unsigned char *buf;

	if (size < HDR_LEN || !fz_open_index(data + HDR_LEN, size - HDR_LEN, &a, &ix))
		return 0;
	count = afs_index_count(ix);
	files = malloc((size_t)count * sizeof(*files));
	refs = calloc(count, sizeof(*refs));
	reg = afs_seekreg_new(count, 1 << 20);
	buf = malloc(65536);
	FZ_ASSERT(files && refs && reg && buf, "out of memory");
	afs_decpool_set_cap(afs_seekreg_decoders(reg), 1);
	for (uint32_t id = 0; id < count; id++)
		if (!S_ISDIR(afs_index_node(ix, id)->mode))
			files[nfiles++] = id;
	for (int i = 0; i < NOPS && nfiles > 0; i++)
		run_op(data + 8 * i, slots, refs, a, ix, reg, files, nfiles, buf);
	for (int i = 0; i < NSLOTS; i++)
		afs_stream_close(slots[i].s);
	for (uint32_t id = 0; id < count; id++)
		free(refs[id].bytes);
	free(refs);
	free(files);
	free(buf);
	afs_seekreg_free(reg);
	afs_index_free(ix);
	afs_archive_free(a);
	return 0;
}
