/* SPDX-License-Identifier: MIT */
/* Fuzz target: the database URL as --database or DATABASE_URL gives it,
 * through afs_target_from_options() (with the real backend table, so that
 * the PostgreSQL backend's mask runs libpq's own parser) and the masking
 * of argv items (afs_target_mask_password, afs_target_display).
 *
 * Input: the URL, then optionally a NUL and a --lock-wait value.
 * Checks, for every secret libpq finds in the URL (password, sslpassword,
 * passfile, sslkey; read as archfs connects: PQconnectdbParams with
 * expand_dbname): the form .status shows, the refusal message, the masked
 * argv item and the display form hold its value fewer times than the URL
 * does (so not as the secret), and libpq reading them finds no secret but
 * masks (in .status's form, which the PostgreSQL backend checks so). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include "db.h"
#include "fuzzutil.h"
#include "target.h"

#define MAX_SECRETS 16

static const char *const secret_keys[] = { "password", "sslpassword", "passfile", "sslkey" };

/* What pg.c hands libpq: a SQLAlchemy "postgresql+driver://" scheme
 * becomes "postgresql://". */
static char *libpq_url(const char *url)
{
	size_t scheme = strspn(url, "abcdefghijklmnopqrstuvwxyz0123456789+.-");
	char *out;

	if (memchr(url, '+', scheme) && strncmp(url + scheme, "://", 3) == 0)
		return asprintf(&out, "postgresql%s", url + scheme) < 0 ? NULL : out;
	return strdup(url);
}

static bool is_secret(const char *keyword)
{
	for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++)
		if (strcmp(keyword, secret_keys[i]) == 0)
			return true;
	return false;
}

/* The non-empty secret values libpq reads in s (malloc'd copies). */
static size_t secrets(const char *s, char **out)
{
	char *u = libpq_url(s);
	PQconninfoOption *opts = u ? PQconninfoParse(u, NULL) : NULL;
	size_t n = 0;

	for (PQconninfoOption *o = opts; o && o->keyword && n < MAX_SECRETS; o++)
		if (o->val && o->val[0] && is_secret(o->keyword))
			out[n++] = strdup(o->val);
	PQconninfoFree(opts);
	free(u);
	return n;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* A value that a mask could make (masks are 'x's), or too short to tell
 * from other text: the fixed words of a message ("scheme"), the text a
 * removed password's neighbours make ("u" + "@h"). */
static bool weak(const char *v)
{
	return strlen(v) < 4 || strspn(v, "x") == strlen(v);
}

static int hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* s with every %XX decoded (malloc'd). */
static char *pct_decoded(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	FZ_ASSERT(out, "out of memory");
	for (; *s; s++) {
		if (s[0] == '%' && hex(s[1]) >= 0 && hex(s[2]) >= 0) {
			*o++ = (char)(hex(s[1]) * 16 + hex(s[2]));
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

/* shown (a form of url made for people) keeps none of url's secrets:
 * holds each fewer times than the input (url, and other, the rest of the
 * input, which shown may quote).  A secret the URL spells with %XX
 * somewhere is left out: its plain text in the URL need not be it. */
static void check_shown(const char *what, const char *url, const char *other, const char *shown, char **sec,
			size_t nsec)
{
	char *plain = pct_decoded(url);

	for (size_t i = 0; i < nsec; i++) {
		size_t given = count(url, sec[i]) + count(other, sec[i]);

		if (weak(sec[i]) || count(plain, sec[i]) != count(url, sec[i]))
			continue;
		FZ_ASSERT(count(shown, sec[i]) < given || count(url, sec[i]) == 0, "%s shows the secret '%s': %s",
			  what, sec[i], shown);
	}
	free(plain);
}

/* libpq reading the .status form finds no secret but masks (what the
 * PostgreSQL backend's mask promises; target.c's display form alone may
 * change the string's structure where it masks, so this holds only here). */
static void check_status_url(const char *shown)
{
	char *found[MAX_SECRETS];
	size_t nfound = secrets(shown, found);

	for (size_t i = 0; i < nfound; i++) {
		FZ_ASSERT(strcmp(found[i], AFS_TARGET_MASK) == 0, "libpq reads a secret '%s' in .status's URL: %s",
			  found[i], shown);
		free(found[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 2), *url, *lock, *masked, *shown, *sec[MAX_SECRETS], msg[2048];
	struct afs_target_opts o = { .backends = afs_db_backends };
	struct afs_target t;
	size_t nsec;

	FZ_ASSERT(in, "out of memory");
	memcpy(in, data, size);
	in[size] = in[size + 1] = '\0';
	url = in;
	lock = in + strlen(in) + 1;
	if (lock <= in + size)
		o.lock_wait = lock;
	else
		lock = in + size + 1; /* "" */
	o.database = url;
	unsetenv("DATABASE_URL");
	unsetenv("UPLOAD_FOLDER");
	nsec = secrets(url, sec);
	if (afs_target_from_options(&o, &t, msg, sizeof(msg)) == AFS_OK) {
		FZ_ASSERT(!url[0] || (t.url && strcmp(t.url, url) == 0 && t.display_url), "the URL is not kept");
		if (t.display_url && t.display_url[0] != '(') { /* "(a PostgreSQL connection string that ...)" */
			check_shown(".status's URL", url, lock, t.display_url, sec, nsec);
			if (t.kind == AFS_DB_POSTGRESQL)
				check_status_url(t.display_url);
		}
		afs_target_release(&t);
	} else {
		FZ_ASSERT(msg[0] != '\0', "a refusal without a reason");
		if (strncmp(msg, "--lock-wait", 11) != 0) /* quotes only the value given for it */
			check_shown("the refusal", url, lock, msg, sec, nsec);
	}
	masked = strdup(url);
	FZ_ASSERT(masked, "out of memory");
	afs_target_mask_password(masked);
	FZ_ASSERT(strlen(masked) == strlen(url), "masking changed the length");
	for (size_t i = 0; url[i]; i++)
		FZ_ASSERT(masked[i] == url[i] || masked[i] == 'x', "masking wrote '%c'", masked[i]);
	check_shown("the masked argv item", url, "", masked, sec, nsec);
	shown = afs_target_display(url);
	FZ_ASSERT(shown, "out of memory");
	check_shown("the display form", url, "", shown, sec, nsec);
	free(shown);
	free(masked);
	for (size_t i = 0; i < nsec; i++)
		free(sec[i]);
	free(in);
	return 0;
}
