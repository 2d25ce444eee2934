/* SPDX-License-Identifier: MIT */
/* Diagnostics of the daemon: stderr in the foreground, syslog once detached. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include "log.h"

static atomic_bool use_syslog;
static atomic_bool debug;

void afs_log_to_syslog(void)
{
	openlog("archfs", LOG_PID, LOG_DAEMON);
	atomic_store(&use_syslog, true);
}

void afs_log_set_debug(bool on)
{
	atomic_store(&debug, on);
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF; a sequence cut
 * short by the end of the string is not one), or 0. */
static size_t utf8_seq(const unsigned char *p)
{
	size_t n = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
		 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;

	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL: p[i] is never read past it */
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || (p[0] == 0xf0 && p[1] < 0x90) ||
	    (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return n;
}

char *afs_log_escape(const char *in, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;

	while (*p) {
		char piece[16];
		size_t n = 1, plen;

		if (*p == '\n' || *p == '\r' || *p == '\t') {
			plen = (size_t)snprintf(piece, sizeof(piece), "\\%c", *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't');
		} else if (*p < 0x20 || *p == 0x7f) {
			plen = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", *p);
		} else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { /* a C1 control: CSI is U+009B */
			plen = (size_t)snprintf(piece, sizeof(piece), "\\x%02x\\x%02x", p[0], p[1]);
			n = 2;
		} else if ((n = utf8_seq(p)) == 0) { /* not UTF-8: the log stays valid text */
			plen = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", *p);
			n = 1;
		} else {
			memcpy(piece, p, n);
			plen = n;
		}
		if (o + plen >= outlen)
			break; /* cut before the piece: never inside an escape or a character */
		memcpy(out + o, piece, plen);
		o += plen;
		p += n;
	}
	out[o] = '\0';
	return out;
}

void afs_log(enum afs_log_level lvl, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024], esc[2048];
	va_list ap;

	if (lvl == AFS_LOG_DEBUG && !atomic_load(&debug))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	afs_log_escape(line, esc, sizeof(esc));
	if (atomic_load(&use_syslog))
		syslog(prio[lvl], "%s", esc);
	else
		fprintf(stderr, "archfs: %s\n", esc); /* one fprintf: lines stay whole across threads */
}
