/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/base/log.c: one prefixed line per message, debug only when asked. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "testutil.h"

/* Runs the logging calls with stderr sent to a file; returns what was written. */
static char *captured(void (*fn)(void))
{
	static char buf[4096];
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	fflush(stderr);
	dup2(fileno(f), STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void plain(void)
{
	afs_log(AFS_LOG_ERR, "%s: CRC-32 mismatch (%08x)", "a/b.txt", 0xdeadbeefu);
	afs_log(AFS_LOG_DEBUG, "hidden %d", 1);
}

static void with_debug(void)
{
	afs_log_set_debug(true);
	afs_log(AFS_LOG_DEBUG, "shown %d", 2);
	afs_log_set_debug(false);
	afs_log(AFS_LOG_DEBUG, "hidden %d", 3);
}

static void to_syslog(void)
{
	afs_log_to_syslog();
	afs_log(AFS_LOG_WARN, "this goes to syslog, not stderr");
}

static void forged(void)
{
	afs_log(AFS_LOG_ERR, "entry '%s' refused", "a\n2026-01-01T00:00:00 step: done\r\x1b[2J");
}

/* afs_log_escape: in escapes to esc; cut short in every buffer size, it
 * is the escape of a prefix of in that ends between characters (never
 * inside an escape or a UTF-8 sequence). */
static void escapes(const char *in, const char *esc)
{
	char out[256], again[256], whole[256];

	afs_log_escape(in, out, sizeof(out));
	if (strcmp(out, esc) != 0) {
		fprintf(stderr, "escape: '%s', want '%s'\n", out, esc);
		CHECK(0);
	}
	CHECK(strcmp(afs_log_escape(out, again, sizeof(again)), out) == 0); /* twice: unchanged */
	for (size_t n = 1; n <= strlen(esc) + 1; n++) {
		char *cut = malloc(n);
		bool boundary = false;

		afs_log_escape(in, cut, n);
		CHECK(strlen(cut) < n);
		for (size_t k = 0; k <= strlen(in) && !boundary; k++) {
			char *prefix = strndup(in, k);

			if (((unsigned char)in[k] & 0xc0) != 0x80)
				boundary = strcmp(afs_log_escape(prefix, whole, sizeof(whole)), cut) == 0;
			free(prefix);
		}
		if (!boundary)
			fprintf(stderr, "escape of '%s' in %zu bytes: '%s' is cut inside a piece\n", in, n, cut);
		CHECK(boundary);
		free(cut);
	}
}

int main(void)
{
	CHECK(strcmp(captured(plain), "archfs: a/b.txt: CRC-32 mismatch (deadbeef)\n") == 0);
	CHECK(strcmp(captured(with_debug), "archfs: shown 2\n") == 0);
	/* control characters from an archive cannot forge a line */
	CHECK(strcmp(captured(forged), "archfs: entry 'a\\n2026-01-01T00:00:00 step: done\\r\\x1b[2J' refused\n") == 0);
	escapes("plain text, a\\b and ünïcödé", "plain text, a\\b and ünïcödé");
	escapes("a\nb\rc\td", "a\\nb\\rc\\td");
	escapes("\x01\x1b[31m\x7f", "\\x01\\x1b[31m\\x7f");
	escapes("csi \xc2\x9b" "2J nbsp \xc2\xa0", "csi \\xc2\\x9b" "2J nbsp \xc2\xa0");
	escapes("bad \xff\xc2 utf-8", "bad \xff\xc2 utf-8");
	escapes("", "");
	CHECK(strcmp(captured(to_syslog), "") == 0);
	return tu_done("log");
}
