/* SPDX-License-Identifier: MIT */
/* Shared pieces of the libFuzzer targets: archive bytes made openable by
 * path, and the checks that turn a wrong answer into a crash libFuzzer
 * reports (with the input that caused it).
 *
 * Thread safety: none; a fuzz target runs one input at a time. */
#ifndef AFS_FUZZUTIL_H
#define AFS_FUZZUTIL_H

#include <stddef.h>
#include <stdint.h>

struct afs_archive;
struct afs_index;

/* The path of a file holding exactly size bytes of data: one memfd per
 * process, rewritten for each input, opened as /proc/self/fd/N.  The
 * archive module is fed as a mount feeds it, by path (stat, libzip's own
 * open, pread of the central directory), not through a side door.  NULL
 * when the memfd cannot be made or written. */
const char *fz_file(const uint8_t *data, size_t size);

/* Opens data as an archive and builds its index: both or neither (the
 * failure is an ordinary outcome for fuzzed bytes, not an error). */
int fz_open_index(const uint8_t *data, size_t size, struct afs_archive **a, struct afs_index **ix);

/* Aborts with a message when cond does not hold: a property violation is a
 * finding, like a crash. */
#define FZ_ASSERT(cond, ...)                                                    \
	do {                                                                    \
		if (!(cond))                                                    \
			fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);        \
	} while (0)

_Noreturn void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* True when s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms,
 * surrogates or code points past U+10FFFF). */
int fz_utf8_valid(const char *s, size_t len);

#endif
