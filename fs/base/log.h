/* SPDX-License-Identifier: MIT */
/* Diagnostics of the daemon: stderr in the foreground, syslog once detached. */
#ifndef AFS_LOG_H
#define AFS_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum afs_log_level { AFS_LOG_ERR, AFS_LOG_WARN, AFS_LOG_INFO, AFS_LOG_DEBUG };

/* Sends later messages to syslog (ident "archfs") instead of stderr. */
void afs_log_to_syslog(void);

/* Shows AFS_LOG_DEBUG messages too (archfs -d). */
void afs_log_set_debug(bool on);

/* Copies in to out (outlen > 0 bytes, always NUL-terminated) with every
 * control character escaped, so that text from an archive (a name with a
 * newline, a terminal escape) can neither forge a log line nor reach a
 * terminal raw: \n, \r and \t as such, other bytes below 0x20, 0x7f and
 * the UTF-8 encoded C1 controls (U+0080..U+009F) as \xHH per byte; so
 * is every byte that is not part of a well-formed UTF-8 sequence (RFC
 * 3629: overlong forms, surrogates, lone continuation bytes, sequences
 * cut short), so that the result is valid UTF-8 whatever in holds.  A
 * backslash is left as it is, so escaping twice changes nothing.  Text
 * that does not fit is cut at an escape or character boundary.  Returns out. */
char *afs_log_escape(const char *in, char *out, size_t outlen);

/* One line, "archfs: " prefixed on stderr; the newline is added.  The
 * message is escaped with afs_log_escape(). */
void afs_log(enum afs_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
