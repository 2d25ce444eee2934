/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/base/log.c: one prefixed line per message, debug only when asked. */
#undef _FORTIFY_SOURCE /* this file defines syslog() itself (below) */
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include "log.h"
#include "testutil.h"

/* What reached syslog.  This program defines openlog() and syslog(): the
 * linker binds log.c's calls to these before the C library's, so the test
 * sees each call as made (priority, format and text) and nothing is sent
 * to the machine's log.  A fortified log.c calls __syslog_chk() instead:
 * defined too. */
static struct {
	int opens, option, facility;
	char ident[32];
	int n;          /* syslog() calls */
	int prio[8];
	char text[8][256];
	bool bad_fmt;   /* a format other than "%s": a message would be read as one */
} sys;

void openlog(const char *ident, int option, int facility)
{
	sys.opens++;
	snprintf(sys.ident, sizeof(sys.ident), "%s", ident ? ident : "(null)");
	sys.option = option;
	sys.facility = facility;
}

static void record(int prio, const char *fmt, va_list ap)
{
	if (strcmp(fmt, "%s") != 0) {
		sys.bad_fmt = true; /* do not format it: the arguments may not match */
		return;
	}
	if (sys.n < 8) {
		sys.prio[sys.n] = prio;
		snprintf(sys.text[sys.n], sizeof(sys.text[0]), "%s", va_arg(ap, const char *));
	}
	sys.n++;
}

void syslog(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(prio, fmt, ap);
	va_end(ap);
}

void __syslog_chk(int prio, int flag, const char *fmt, ...);
void __syslog_chk(int prio, int flag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(prio, fmt, ap);
	va_end(ap);
}

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
	afs_log(AFS_LOG_ERR, "entry '%s': 100%% %s", "a\nb %s %n", "read");
	afs_log(AFS_LOG_INFO, "info %d", 1);
	afs_log(AFS_LOG_DEBUG, "hidden %d", 4);
	afs_log_set_debug(true);
	afs_log(AFS_LOG_DEBUG, "shown %d", 5);
	afs_log_set_debug(false);
}

/* Detached: every message goes to syslog (ident "archfs", the pid, the
 * daemon facility) at its level's priority, escaped, with "%s" as the
 * format; nothing reaches stderr. */
static void syslog_path(void)
{
	CHECK(strcmp(captured(to_syslog), "") == 0);
	CHECK(sys.opens == 1 && strcmp(sys.ident, "archfs") == 0 && sys.option == LOG_PID &&
	      sys.facility == LOG_DAEMON);
	CHECK(!sys.bad_fmt);
	CHECK(sys.n == 4);
	CHECK(sys.prio[0] == LOG_WARNING && strcmp(sys.text[0], "this goes to syslog, not stderr") == 0);
	CHECK(sys.prio[1] == LOG_ERR && strcmp(sys.text[1], "entry 'a\\nb %s %n': 100% read") == 0);
	CHECK(sys.prio[2] == LOG_INFO && strcmp(sys.text[2], "info 1") == 0);
	CHECK(sys.prio[3] == LOG_DEBUG && strcmp(sys.text[3], "shown 5") == 0);
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

			/* the escape of a prefix that ends inside a character
			 * escapes its bytes: then it is no prefix of esc */
			boundary = strcmp(afs_log_escape(prefix, whole, sizeof(whole)), cut) == 0 &&
				   strncmp(cut, esc, strlen(cut)) == 0;
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
	/* bytes that are not well-formed UTF-8 are escaped one by one; valid
	 * characters of 2, 3 and 4 bytes stay */
	escapes("bad \xff\xc2 utf-8", "bad \\xff\\xc2 utf-8");
	escapes("2 \xc3\xa9 3 \xe2\x82\xac \xef\xbf\xbd 4 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
		"2 \xc3\xa9 3 \xe2\x82\xac \xef\xbf\xbd 4 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf");
	escapes("overlong \xc0\xaf \xc1\xbf \xe0\x80\xaf \xf0\x80\x80\xaf",
		"overlong \\xc0\\xaf \\xc1\\xbf \\xe0\\x80\\xaf \\xf0\\x80\\x80\\xaf");
	escapes("lone \x80 \xbf\xbf x", "lone \\x80 \\xbf\\xbf x");
	escapes("cut \xe2\x82 \xf0\x9f\x98", "cut \\xe2\\x82 \\xf0\\x9f\\x98");
	escapes("at the end \xe2\x82", "at the end \\xe2\\x82");
	escapes("surrogate \xed\xa0\x80 \xed\xbf\xbf but \xed\x9f\xbf", "surrogate \\xed\\xa0\\x80 \\xed\\xbf\\xbf but \xed\x9f\xbf");
	escapes("past U+10FFFF \xf4\x90\x80\x80 \xf5\x80\x80\x80 \xfe",
		"past U+10FFFF \\xf4\\x90\\x80\\x80 \\xf5\\x80\\x80\\x80 \\xfe");
	escapes("", "");
	CHECK(sys.opens == 0 && sys.n == 0); /* stderr until detached */
	syslog_path();
	return tu_done("log");
}
