/* SPDX-License-Identifier: MIT */
/* The PostgreSQL backend (the only libpq user).
 *
 * verify connects (a clear error for a wrong password, an unreachable
 * server, a missing database), reads the dump's header, picks the newest
 * pg_restore that can read it, lists its tables (pg_restore --list) and
 * reads it to its end (pg_restore --file=/dev/null), every time streaming
 * db.dump from the archive into the child's stdin.
 *
 * restore streams db.dump once more through `pg_restore --clean --if-exists
 * --no-owner -f -` into psql, inside one transaction that first takes
 * ACCESS EXCLUSIVE locks on every existing table the dump replaces, in one
 * LOCK TABLE retried under a short lock_timeout (so it never waits while
 * holding some of them: application transactions that read users then
 * time_entries cannot deadlock with it).  COMMIT is relayed to psql only
 * when pg_restore succeeded.  psql echoes marks around it: the
 * transaction's id after BEGIN, "committing" before COMMIT, "committed"
 * after it.  When the run ends between the last two marks the COMMIT may
 * or may not have happened (psql killed, the connection lost): the server
 * is asked (txid_status) before anything is reported, and a cancel that
 * arrives once COMMIT is on its way no longer stops psql.  While it runs,
 * this process watches
 * pg_blocking_pids() of the restoring session: past --lock-wait seconds it
 * terminates that session (the transaction rolls back) or, with
 * --terminate-blockers, the blockers.
 *
 * With --migrate, migrate restores db.dump into a staging database of
 * archfs's own (<db>__archfs_staging, marked by its comment), runs the
 * migrate command against it, and restore streams `pg_dump --clean
 * --if-exists` of the migrated staging database into the same locked
 * transaction instead of db.dump; staging is dropped after the swap, on
 * failure and on cancel.
 *
 * The flag: a session advisory lock (AFS_PG_LOCK_KEY1, AFS_PG_LOCK_KEY2)
 * held on this backend's own connection from the flag step to the end, and
 * NOTIFY archfs_restore with a JSON payload at both ends.
 *
 * psql runs the backslash commands of what it reads: verify refuses a
 * pg_restore (and, with --migrate, a pg_dump) without the \restrict fix of
 * CVE-2025-8714, so that a hostile db.dump cannot run a shell command
 * through psql (check_restrict()).  The other children (pg_restore --list,
 * --file=/dev/null and --dbname, pg_dump --format=custom) run no psql.
 *
 * Passwords reach the children only as PGPASSWORD in their environment,
 * never on a command line; .status and logs show the URL as pg_mask()
 * (libpq's own reading of it) allows.
 */
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "db.h"
#include "index.h"
#include "job.h"
#include "pgdump.h"
#include "proc.h"
#include "report.h"
#include "stream.h"
#include "target.h"

/* The advisory lock: pg_advisory_lock(1634886504, 1), "arch" and 1. */
#define AFS_PG_LOCK_KEY1 1634886504
#define AFS_PG_LOCK_KEY2 1
#define LOCK_RETRY_TIMEOUT "100ms"
#define MAX_ENV 12
#define TAIL 1024
#define CONNECT_TIMEOUT "10"

struct pg_state {
	struct afs_job *j;
	PGconn *conn;            /* our own session: checks, flag, watcher */
	PGconn *admin;           /* --create: a session on the maintenance database */
	char *dbname;            /* --create: the database to create */
	bool created;            /* create() made it: discard() may drop it */
	char *env[MAX_ENV + 1];  /* PGHOST=... for the children */
	char *bindir;            /* of the chosen pg_restore */
	int major;               /* its PostgreSQL major version */
	struct afs_pgdump_header hdr;
	char **tables;           /* the dump's tables: schema, name, schema, name, ... */
	size_t ntables;
	enum afs_err toc_err;
	uint32_t dump;
	bool flagged;
	/* one streaming pass over db.dump */
	struct afs_stream *s;
	uint64_t off;
	bool track;              /* progress counts the bytes fed */
	char read_why[128];      /* why the last pass's stream failed, for the message */
	/* the watcher of the restoring session */
	char appname[64];
	int backend_pid;
	double blocked_since, last_blocked; /* monotonic seconds; 0: not blocked */
	bool committed;
	long long xid;           /* the restore transaction's txid_current(), 0 until psql said it */
	bool commit_sent;        /* psql said "committing": the COMMIT may have run */
	bool late_cancel;        /* a cancel came once COMMIT was on its way: logged once */
	char *blockers;          /* reason when the lock wait ran out */
	/* --migrate: the staging database the dump is restored into and
	 * migrated in before the swap */
	char *staging;           /* its name, set by verify */
	char *staging_mark;      /* its COMMENT ON DATABASE: "archfs staging for <db>" */
	bool staging_made;       /* it exists and is ours: dropped by restore() or release() */
	bool migrated;           /* restore() swaps in pg_dump of staging, not db.dump */
};

/* ------------------------------------------------------------ helpers */

/* The first line of libpq's error message, without "FATAL:  " noise. */
static const char *pq_reason(PGconn *c, char *buf, size_t len)
{
	const char *m = c ? PQerrorMessage(c) : "out of memory";
	size_t n;

	if (strncmp(m, "connection to server ", 21) == 0 && strstr(m, "failed: "))
		m = strstr(m, "failed: ") + 8;
	n = strcspn(m, "\n");
	snprintf(buf, len, "%.*s", (int)n, m);
	return buf;
}

/* libpq wants postgresql:// or postgres://; SQLAlchemy adds a driver
 * (postgresql+psycopg2://).  A key=value connection string is as given. */
static char *libpq_url(const char *url)
{
	size_t scheme = strspn(url, "abcdefghijklmnopqrstuvwxyz0123456789+.-");
	char *out;

	if (memchr(url, '+', scheme) && strncmp(url + scheme, "://", 3) == 0) {
		if (asprintf(&out, "postgresql%s", url + scheme) < 0)
			return NULL;
		return out;
	}
	return strdup(url);
}

/* Overwrites and frees a string that may hold a password. */
static void free_secret(char *s)
{
	if (s)
		memset(s, 0, strlen(s));
	free(s);
}

static PGconn *connect_url(const char *url, const char *appname)
{
	const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *vals[] = { url, CONNECT_TIMEOUT, appname, NULL };

	return PQconnectdbParams(keys, vals, 1);
}

/* The maintenance databases tried, in order, to look for or create a
 * database the target URL names but the server does not have. */
static const char *const maintenance_dbs[] = { "postgres", "template1" };

/* A session on database db of the server url names (same host, user,
 * password and options; "dbname" given a second time is a plain name). */
static PGconn *connect_other(const char *url, const char *db, const char *appname)
{
	const char *keys[] = { "dbname", "connect_timeout", "application_name", "dbname", NULL };
	const char *vals[] = { url, CONNECT_TIMEOUT, appname, db, NULL };

	return PQconnectdbParams(keys, vals, 1);
}

/* A session on the first maintenance database that accepts one, or NULL. */
static PGconn *connect_admin(const char *url)
{
	for (size_t i = 0; i < sizeof(maintenance_dbs) / sizeof(maintenance_dbs[0]); i++) {
		PGconn *c = connect_other(url, maintenance_dbs[i], "archfs");

		if (c && PQstatus(c) == CONNECTION_OK)
			return c;
		PQfinish(c);
	}
	return NULL;
}

/* 1 when the server of admin has database name, 0 when not, -1 when the
 * question failed. */
static int database_exists(PGconn *admin, const char *name)
{
	const char *params[] = { name };
	PGresult *r = PQexecParams(admin, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL, params, NULL, NULL, 0);
	int n = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) > 0 : -1;

	PQclear(r);
	return n;
}

/* The single value of a one-row query, malloc'd, or NULL. */
static char *query_value(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	char *v = NULL;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* True when a one-value query answers "t". */
static bool query_value_ok(PGconn *c, const char *sql)
{
	char *v = query_value(c, sql);
	bool yes = v && strcmp(v, "t") == 0;

	free(v);
	return yes;
}

/* PGHOST=..., PGPASSWORD=... from the parsed connection options. */
static enum afs_err make_env(struct pg_state *s)
{
	static const char *const map[][2] = {
		{ "host", "PGHOST" }, { "hostaddr", "PGHOSTADDR" }, { "port", "PGPORT" },
		{ "user", "PGUSER" }, { "password", "PGPASSWORD" }, { "dbname", "PGDATABASE" },
		{ "sslmode", "PGSSLMODE" }, { "sslrootcert", "PGSSLROOTCERT" },
	};
	PQconninfoOption *opts = PQconninfo(s->conn);
	size_t n = 0;

	if (!opts)
		return AFS_E_NOMEM;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		for (size_t k = 0; k < sizeof(map) / sizeof(map[0]) && n < MAX_ENV - 1; k++) {
			if (strcmp(o->keyword, map[k][0]) != 0 || !o->val || !o->val[0])
				continue;
			if (asprintf(&s->env[n], "%s=%s", map[k][1], o->val) < 0) {
				s->env[n] = NULL;
				PQconninfoFree(opts);
				return AFS_E_NOMEM;
			}
			n++;
		}
	}
	PQconninfoFree(opts);
	return AFS_OK;
}

/* Runs a query expected to succeed; NULL with the reason in the job. */
static PGresult *query(struct pg_state *s, const char *what, const char *sql, int nparams, const char *const *params)
{
	PGresult *r = PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	char why[512];

	if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
		return r;
	afs_job_fail(s->j, AFS_E_FAILED, "%s: %s", what, pq_reason(s->conn, why, sizeof(why)));
	PQclear(r);
	return NULL;
}

/* ------------------------------------------------------ pg_restore */

struct version_probe {
	int major;
};

static void version_line(void *ctx, const char *line)
{
	struct version_probe *v = ctx;
	const char *p = strstr(line, "(PostgreSQL) ");

	if (p)
		v->major = atoi(p + 13);
}

/* The major version of a pg_restore binary (0 when it does not run). */
static int probe_major(const char *path)
{
	const char *argv[] = { path, "--version", NULL };
	struct version_probe v = { 0 };
	struct afs_proc_opts o = { .argv = argv, .line = version_line, .ctx = &v };
	char tail[128];
	int st;

	if (access(path, X_OK) != 0 || afs_proc_run(&o, &st, tail, sizeof(tail)) != AFS_OK)
		return 0;
	return v.major;
}

/* Picks --pg-bindir, else the newest pg_restore of /usr/lib/postgresql/N/bin
 * and PATH. */
static enum afs_err pick_pg_restore(struct pg_state *s)
{
	const struct afs_target *t = afs_job_target(s->j);
	char *best = NULL, *cand = NULL;
	int best_major = 0;
	glob_t g = { 0 };

	if (t->pg_bindir) {
		if (asprintf(&cand, "%s/pg_restore", t->pg_bindir) < 0)
			return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
		best_major = probe_major(cand);
		if (!best_major) {
			free(cand);
			return afs_job_fail(s->j, AFS_E_NOENT, "no working pg_restore in --pg-bindir %s", t->pg_bindir);
		}
		best = cand;
	} else {
		const char *path = getenv("PATH");
		char *dirs = strdup(path ? path : "/usr/bin:/bin"), *save = NULL;

		if (glob("/usr/lib/postgresql/*/bin/pg_restore", 0, NULL, &g) == 0) {
			for (size_t i = 0; i < g.gl_pathc; i++) {
				int m = probe_major(g.gl_pathv[i]);

				if (m > best_major) {
					free(best);
					best = strdup(g.gl_pathv[i]);
					best_major = m;
				}
			}
		}
		globfree(&g);
		for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
			int m;

			if (asprintf(&cand, "%s/pg_restore", d) < 0)
				break;
			m = probe_major(cand);
			if (m > best_major) {
				free(best);
				best = cand;
				best_major = m;
			} else {
				free(cand);
			}
			cand = NULL;
		}
		free(dirs);
		if (!best)
			return afs_job_fail(s->j, AFS_E_NOENT,
					    "no pg_restore found (install postgresql-client, or give --pg-bindir)");
	}
	s->bindir = strdup(dirname(best));
	s->major = best_major;
	free(best);
	if (!s->bindir)
		return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
	return AFS_OK;
}

static char *tool(struct pg_state *s, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", s->bindir, name) < 0)
		return NULL;
	return p;
}

static void restrict_line(void *ctx, const char *line)
{
	if (strstr(line, "--restrict-key"))
		*(bool *)ctx = true;
}

/* The restore pipes a script into psql (pg_restore --file=- | psql, and
 * pg_dump | psql after --migrate), and psql runs the backslash commands
 * it reads: a hostile db.dump can put "\! command" in any text that
 * pg_restore prints as it is (an object's definition in the archive's
 * table of contents, an object name in a comment line).  pg_restore and
 * pg_dump with the fix of CVE-2025-8714 (PostgreSQL 17.6, 16.10, 15.14,
 * 14.19, 13.22 and newer; they have --restrict-key) open every script
 * with "\restrict KEY", a random key, and psql then refuses every
 * backslash command but "\unrestrict KEY" up to the script's end.
 * Verify, the staging restore of --migrate (pg_restore --dbname) and the
 * snapshot (pg_dump --format=custom) involve no psql.  Refuses, at
 * verify, tools without the fix. */
static enum afs_err check_restrict(struct pg_state *s, bool migrate)
{
	const char *const names[] = { "pg_restore", migrate ? "pg_dump" : NULL };

	for (size_t i = 0; i < 2 && names[i]; i++) {
		char *path = tool(s, names[i]), tail[256];
		const char *argv[] = { path, "--help", NULL };
		bool has = false;
		struct afs_proc_opts o = { .argv = argv, .line = restrict_line, .ctx = &has };
		int st;

		if (!path)
			return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
		if (afs_proc_run(&o, &st, tail, sizeof(tail)) != AFS_OK)
			has = false;
		free(path);
		if (!has)
			return afs_job_fail(s->j, AFS_E_UNSUPPORTED,
					    "%s/%s (PostgreSQL %d) lacks the fix of CVE-2025-8714 (it has no "
					    "--restrict-key): the restore pipes its output into psql, where a hostile "
					    "db.dump could run shell commands; install client tools of PostgreSQL 17.6, "
					    "16.10, 15.14, 14.19, 13.22 or newer, or give --pg-bindir",
					    s->bindir, names[i], s->major);
	}
	return AFS_OK;
}

/* ---------------------------------------------------------- the dump */

/* The input callback: the next bytes of db.dump. */
static enum afs_err feed_dump(void *ctx, void *buf, size_t len, size_t *got)
{
	struct pg_state *s = ctx;
	enum afs_err err;

	if (afs_job_cancelled(s->j))
		return AFS_E_CANCELLED;
	err = afs_stream_pread(s->s, buf, len, s->off, got);
	if (err == AFS_OK) {
		s->off += *got;
		if (s->track)
			afs_job_advance(s->j, *got);
		if (s->track && *got)
			afs_job_test_pause(s->j, AFS_ST_DATABASE);
	}
	return err;
}

/* One line of pg_restore --list: "ID; CATALOG OID TABLE schema name owner". */
static void toc_line(void *ctx, const char *line)
{
	struct pg_state *c = ctx;
	char schema[256], name[256];
	unsigned id, cat, oid;
	char **grown;

	if (sscanf(line, "%u; %u %u TABLE %255s %255s", &id, &cat, &oid, schema, name) != 5 ||
	    strcmp(schema, "DATA") == 0)
		return;
	grown = realloc(c->tables, (c->ntables + 2) * sizeof(*grown));
	if (!grown) {
		c->toc_err = AFS_E_NOMEM;
		return;
	}
	c->tables = grown;
	grown[c->ntables] = strdup(schema);
	grown[c->ntables + 1] = strdup(name);
	if (!grown[c->ntables] || !grown[c->ntables + 1])
		c->toc_err = AFS_E_NOMEM;
	c->ntables += 2;
}

static void pg_line(void *ctx, const char *line)
{
	struct pg_state *s = ctx;

	afs_job_log(s->j, "pg: %s", line);
}

/* Reads the rest of db.dump after a child stopped early, so that its
 * CRC-32 is checked. */
static enum afs_err drain(struct pg_state *s)
{
	char *buf = malloc(1 << 20);
	enum afs_err err = buf ? AFS_OK : AFS_E_NOMEM;
	size_t got = 1;

	while (err == AFS_OK && got)
		err = feed_dump(s, buf, 1 << 20, &got);
	free(buf);
	return err;
}

static bool stream_cancelled(void *ctx)
{
	struct pg_state *s = ctx;

	return afs_job_cancelled(s->j);
}

/* Streams db.dump through a pg_restore run (argv), stopped on cancel;
 * progress when track. */
static enum afs_err stream_through(struct pg_state *s, const char *const *argv, void (*line)(void *, const char *),
				   bool track, char *tail, size_t taillen)
{
	struct afs_proc_opts o = { .argv = argv, .input = feed_dump, .setenv = (const char *const *)s->env,
				   .line = line, .cancelled = stream_cancelled, .ctx = s };
	enum afs_err err;
	int st;

	s->off = 0;
	s->track = track;
	err = afs_stream_open(afs_job_archive(s->j), afs_job_index(s->j), s->dump, &s->s);
	if (err != AFS_OK)
		return afs_job_fail_as(s->j, AFS_FAIL_ARCHIVE, err, "db.dump cannot be read: %s", afs_strerror(err));
	err = afs_proc_run(&o, &st, tail, taillen);
	if (err == AFS_OK && track)
		err = drain(s); /* the CRC-32 is checked at the end of the entry */
	snprintf(s->read_why, sizeof(s->read_why), "%s", afs_stream_error(s->s, err));
	afs_stream_close(s->s);
	s->s = NULL;
	return err;
}

static enum afs_err verify_dump(struct pg_state *s)
{
	char *pgr = tool(s, "pg_restore"), tail[TAIL];
	const char *list_argv[] = { pgr, "--list", NULL };
	const char *read_argv[] = { pgr, "--file=/dev/null", NULL };
	enum afs_err err;

	if (!pgr)
		return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
	err = stream_through(s, list_argv, toc_line, false, tail, sizeof(tail));
	if (err == AFS_OK && s->toc_err != AFS_OK)
		err = afs_job_fail(s->j, s->toc_err, "out of memory");
	if (err == AFS_OK) {
		afs_job_log(s->j, "db.dump lists %zu tables", s->ntables / 2);
		err = stream_through(s, read_argv, pg_line, true, tail, sizeof(tail));
	}
	if (err == AFS_E_FAILED)
		afs_job_fail_as(s->j, AFS_FAIL_ARCHIVE, AFS_E_CORRUPT, "pg_restore cannot read db.dump to its end: %s", tail);
	else if (err == AFS_E_IO)
		afs_job_fail(s->j, err, "%s", tail);
	else if (err != AFS_OK && err != AFS_E_CANCELLED)
		afs_job_fail_as(s->j, AFS_FAIL_ARCHIVE, err, "db.dump in the archive cannot be read: %s", s->read_why);
	free(pgr);
	return err;
}

/* -------------------------------------------------------------- verify */

static enum afs_err read_header(struct pg_state *s)
{
	unsigned char buf[4096];
	char why[256];
	struct afs_stream *st = NULL;
	size_t got = 0;
	enum afs_err err = afs_stream_open(afs_job_archive(s->j), afs_job_index(s->j), s->dump, &st);

	if (err == AFS_OK)
		err = afs_stream_pread(st, buf, sizeof(buf), 0, &got);
	if (err != AFS_OK)
		afs_job_fail_as(s->j, AFS_FAIL_ARCHIVE, err, "db.dump cannot be read: %s", afs_stream_error(st, err));
	afs_stream_close(st);
	if (err != AFS_OK)
		return err;
	err = afs_pgdump_parse_header(buf, got, &s->hdr, why, sizeof(why));
	if (err != AFS_OK)
		return afs_job_fail_as(s->j, AFS_FAIL_ARCHIVE, err, "db.dump: %s", why);
	return AFS_OK;
}

/* .status "dump": the header's strings come from the archive and go
 * through the JSON writer (report.c), never pasted into JSON text. */
static void publish_dump_info(struct pg_state *s)
{
	char *pgr = tool(s, "pg_restore"), *json;
	struct afs_dump_view v = { .format = "custom", .vmaj = s->hdr.vmaj, .vmin = s->hdr.vmin, .vrev = s->hdr.vrev,
				   .server_version = s->hdr.server_version, .pg_dump_version = s->hdr.pg_dump_version,
				   .restore_tool = pgr, .restore_tool_major = s->major };

	json = pgr ? afs_report_dump(&v) : NULL;
	if (json)
		afs_job_set_dump_info(s->j, json);
	free(json);
	free(pgr);
}

/* ------------------------------------------------------------- inspect */

/* --create and the database is missing: a session on the maintenance
 * database that create() will use, and the role's right to create one
 * (checked now, so that a refusal changes nothing). */
static enum afs_err check_can_create(struct pg_state *s)
{
	const struct afs_target *t = afs_job_target(s->j);
	char *url = libpq_url(t->url), *role = NULL;
	PGconn *probe = url ? connect_url(url, "archfs") : NULL;
	bool may;

	s->dbname = probe && PQdb(probe) ? strdup(PQdb(probe)) : NULL;
	PQfinish(probe);
	s->admin = url && s->dbname ? connect_admin(url) : NULL;
	free(url);
	if (!s->dbname)
		return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
	if (!s->admin)
		return afs_job_fail_as(s->j, AFS_FAIL_TARGET, AFS_E_FAILED,
				       "--create: cannot connect to a maintenance database (postgres, template1) of %s",
				    t->display_url);
	role = query_value(s->admin, "SELECT current_user");
	may = query_value_ok(s->admin, "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user");
	if (!may) {
		afs_job_fail_as(s->j, AFS_FAIL_TARGET, AFS_E_ACCES,
				"--create: the role %s may not create databases (it has no CREATEDB): create the database "
			     "%s first, or connect as a role that may",
			     role ? role : "?", s->dbname);
		free(role);
		return AFS_E_ACCES;
	}
	afs_job_log(s->j, "--create: the role %s may create the database %s", role ? role : "?", s->dbname);
	free(role);
	return AFS_OK;
}

/* Opens our own session on the target database, and the children's
 * environment; what names the database in the error ("", "the new database "). */
static enum afs_err connect_target(struct pg_state *s, const char *what)
{
	const struct afs_target *t = afs_job_target(s->j);
	char why[256], *url = libpq_url(t->url);

	s->conn = url ? connect_url(url, "archfs") : NULL;
	free(url);
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK)
		return afs_job_fail_as(s->j, AFS_FAIL_TARGET, AFS_E_FAILED, "cannot connect to %s%s: %s", what,
				       t->display_url,
				    pq_reason(s->conn, why, sizeof(why)));
	if (make_env(s) != AFS_OK)
		return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
	return AFS_OK;
}

static enum afs_err pg_create(struct afs_job *j, void *state)
{
	struct pg_state *s = state;
	char *ident = PQescapeIdentifier(s->admin, s->dbname, strlen(s->dbname)), *sql = NULL, why[512];
	PGresult *r;

	if (!ident || asprintf(&sql, "CREATE DATABASE %s", ident) < 0) {
		PQfreemem(ident);
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	}
	PQfreemem(ident);
	r = PQexec(s->admin, sql);
	free(sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		return afs_job_fail_as(j, AFS_FAIL_TARGET, AFS_E_FAILED, "--create: CREATE DATABASE %s failed: %s",
				       s->dbname, pq_reason(s->admin, why, sizeof(why)));
	}
	PQclear(r);
	s->created = true;
	afs_job_log(j, "created the database %s", s->dbname);
	return connect_target(s, "the new database ");
}

static void pg_discard(struct afs_job *j, void *state)
{
	struct pg_state *s = state;
	char *ident, *sql = NULL, why[512];
	PGresult *r;

	if (!s || !s->created)
		return;
	s->created = false;
	if (s->conn)
		PQfinish(s->conn); /* a database with a session cannot be dropped */
	s->conn = NULL;
	ident = PQescapeIdentifier(s->admin, s->dbname, strlen(s->dbname));
	if (!ident || asprintf(&sql, "DROP DATABASE IF EXISTS %s", ident) < 0)
		sql = NULL;
	PQfreemem(ident);
	r = sql ? PQexec(s->admin, sql) : NULL;
	if (PQresultStatus(r) == PGRES_COMMAND_OK)
		afs_job_log(j, "dropped the database %s, created for this restore: nothing was restored into it",
			    s->dbname);
	else
		afs_job_warn(j, "the database %s, created for this restore, could not be dropped: %s", s->dbname,
			     pq_reason(s->admin, why, sizeof(why)));
	PQclear(r);
	free(sql);
}

static enum afs_err pg_inspect(struct afs_job *j, struct afs_db_info *info, char *msg, size_t msglen)
{
	const struct afs_target *t = afs_job_target(j);
	char *url = libpq_url(t->url), *size = NULL, why[512];
	PGconn *c = url ? connect_url(url, "archfs") : NULL, *admin = NULL;
	enum afs_err err = AFS_OK;
	int has;

	memset(info, 0, sizeof(*info));
	if (!c) {
		snprintf(msg, msglen, "out of memory");
		err = AFS_E_NOMEM;
		goto out;
	}
	info->name = strdup(PQdb(c) ? PQdb(c) : "?");
	if (!info->name) {
		snprintf(msg, msglen, "out of memory");
		err = AFS_E_NOMEM;
		goto out;
	}
	if (PQstatus(c) == CONNECTION_OK) {
		info->exists = true;
		size = query_value(c, "SELECT pg_database_size(current_database())");
		info->size = size ? strtoull(size, NULL, 10) : 0;
		if (query_value_ok(c, "SELECT to_regclass('alembic_version') IS NOT NULL"))
			info->revision = query_value(c, "SELECT version_num FROM alembic_version LIMIT 1");
		goto out;
	}
	/* a database that is not there, or a server that will not talk to us? */
	pq_reason(c, why, sizeof(why));
	admin = connect_admin(url);
	has = admin ? database_exists(admin, info->name) : -1;
	if (has != 0) {
		snprintf(msg, msglen, "cannot connect to %s: %s", t->display_url, why);
		err = AFS_E_FAILED;
	}
out:
	PQfinish(admin);
	PQfinish(c);
	free(size);
	free(url);
	return err;
}

/* ------------------------------------------------------------- staging */

#define STAGING_SUFFIX "__archfs_staging"
#define STAGING_MARK "archfs staging for "
#define PG_NAME_MAX 63 /* NAMEDATALEN - 1 */

/* The staging database's name for the live database db: db and a suffix,
 * db cut at a character boundary so that the whole fits in 63 bytes. */
static char *staging_name(const char *db)
{
	size_t keep = strlen(db), max = PG_NAME_MAX - strlen(STAGING_SUFFIX);
	char *out;

	if (keep > max) {
		keep = max;
		while (keep > 0 && ((unsigned char)db[keep] & 0xC0) == 0x80)
			keep--; /* db[keep] is the first byte cut: not inside a character */
	}
	if (asprintf(&out, "%.*s%s", (int)keep, db, STAGING_SUFFIX) < 0)
		return NULL;
	return out;
}

/* "dbname='name'" for a child's --dbname; host, user and password come
 * from its environment. */
static char *dbname_conninfo(const char *name)
{
	char *out = malloc(2 * strlen(name) + 16), *o = out;

	if (!out)
		return NULL;
	o += sprintf(o, "dbname='");
	for (const char *p = name; *p; p++) {
		if (*p == '\'' || *p == '\\')
			*o++ = '\\';
		*o++ = *p;
	}
	strcpy(o, "'");
	return out;
}

/* url (the target's, as given: its scheme, e.g. postgresql+psycopg2://, is
 * kept) with the database name of its path replaced by db, percent-encoded;
 * user, password, host, port and query are unchanged. */
static char *url_with_db(const char *url, const char *db)
{
	const char *auth = strstr(url, "://"), *q, *path;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (!auth)
		return NULL;
	auth += 3;
	q = auth + strcspn(auth, "?#");
	for (const char *p = auth; p < q; p++)
		if (*p == '@')
			auth = p + 1; /* past user:password@ */
	path = auth + strcspn(auth, "/?#");
	f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	fprintf(f, "%.*s/", (int)(path - url), url);
	for (const unsigned char *p = (const unsigned char *)db; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p))
			fputc(*p, f);
		else
			fprintf(f, "%%%02X", *p);
	}
	fputs(q, f);
	fclose(f);
	return out;
}

/* The comment of database name in *comment ("" when it has none): 1 when
 * it exists, 0 when not (*comment NULL), -1 when the question failed. */
static int database_comment(PGconn *c, const char *name, char **comment)
{
	const char *params[] = { name };
	PGresult *r = PQexecParams(c,
				   "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
				   "WHERE datname = $1",
				   1, NULL, params, NULL, NULL, 0);
	int n = -1;

	*comment = NULL;
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		n = PQntuples(r) > 0;
		if (n) {
			*comment = strdup(PQgetvalue(r, 0, 0));
			if (!*comment)
				n = -1;
		}
	}
	PQclear(r);
	return n;
}

/* The Alembic revision of the database of c (malloc'd), or NULL. */
static char *revision_of(PGconn *c)
{
	if (!query_value_ok(c, "SELECT to_regclass('alembic_version') IS NOT NULL"))
		return NULL;
	return query_value(c, "SELECT version_num FROM alembic_version LIMIT 1");
}

/* verify with --migrate: the role may create the staging database, and a
 * database of its name is either absent or archfs's own (a leftover that
 * migrate drops).  c is a session on the server; db the live database. */
static enum afs_err check_staging(struct pg_state *s, PGconn *c, const char *db)
{
	char *role = NULL, *comment = NULL, *live_rev = NULL;
	enum afs_err err = AFS_OK;
	int has;

	s->staging = staging_name(db);
	if (!s->staging || asprintf(&s->staging_mark, STAGING_MARK "%s", db) < 0) {
		s->staging_mark = NULL;
		return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
	}
	if (!strstr(afs_job_target(s->j)->url, "://"))
		return afs_job_fail(s->j, AFS_E_INVAL,
				    "--migrate needs the database as a postgresql:// URL (the migrate command gets the "
				    "staging database's URL as DATABASE_URL), not a key=value connection string");
	role = query_value(c, "SELECT current_user");
	if (!query_value_ok(c, "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")) {
		err = afs_job_fail(s->j, AFS_E_ACCES,
				   "--migrate needs a role that may create databases (CREATEDB) for the staging database "
				   "%s, and the role %s may not: grant it (ALTER ROLE %s CREATEDB) or connect as a role "
				   "that may",
				   s->staging, role ? role : "?", role ? role : "?");
		goto out;
	}
	has = database_comment(c, s->staging, &comment);
	if (has < 0) {
		err = afs_job_fail(s->j, AFS_E_FAILED, "--migrate: cannot look for the staging database %s", s->staging);
		goto out;
	}
	if (has && strcmp(comment, s->staging_mark) != 0) {
		err = afs_job_fail(s->j, AFS_E_CONFLICT,
				   "--migrate: a database named %s exists and is not archfs's staging database (its "
				   "comment is not '%s'): archfs will not drop it; rename or drop it yourself",
				   s->staging, s->staging_mark);
		goto out;
	}
	if (has)
		afs_job_log(s->j, "--migrate: the staging database %s is a leftover of an earlier run that did not "
			    "finish: the restore drops it", s->staging);
	live_rev = s->conn ? revision_of(s->conn) : NULL;
	afs_job_log(s->j, "--migrate: live at %s; the role %s may create the staging database %s, where the dump "
		    "is restored and migrated before the swap", live_rev ? live_rev : "none", role ? role : "?",
		    s->staging);
out:
	free(live_rev);
	free(comment);
	free(role);
	return err;
}

static enum afs_err pg_verify(struct afs_job *j, uint32_t dump, void **state)
{
	const struct afs_target *t = afs_job_target(j);
	struct pg_state *s = calloc(1, sizeof(*s));
	enum afs_err err;

	*state = s;
	if (!s)
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	s->j = j;
	s->dump = dump;
	err = read_header(s);
	if (err == AFS_OK)
		err = pick_pg_restore(s);
	if (err != AFS_OK)
		return err;
	publish_dump_info(s);
	afs_job_log(j, "db.dump: archive version %d.%d, made by pg_dump %s from PostgreSQL %s; using %s/pg_restore (%d)",
		    s->hdr.vmaj, s->hdr.vmin, s->hdr.pg_dump_version ? s->hdr.pg_dump_version : "?",
		    s->hdr.server_version ? s->hdr.server_version : "?", s->bindir, s->major);
	if (s->hdr.vmin > afs_pgdump_max_minor(s->major))
		return afs_job_fail(j, AFS_E_UNSUPPORTED,
				    "db.dump has archive version %d.%d (pg_dump %s), which pg_restore %d cannot read: "
				    "install PostgreSQL %d or newer client tools (postgresql-client-%d) or give --pg-bindir",
				    s->hdr.vmaj, s->hdr.vmin, s->hdr.pg_dump_version ? s->hdr.pg_dump_version : "?",
				    s->major, afs_pgdump_major_for(s->hdr.vmin), afs_pgdump_major_for(s->hdr.vmin));
	err = check_restrict(s, t->url && t->migrate);
	if (err != AFS_OK)
		return err;
	if (t->url && afs_job_target_missing(j)) {
		err = check_can_create(s);
		if (err != AFS_OK)
			return err;
	} else if (t->url) {
		if ((err = connect_target(s, "")) != AFS_OK)
			return err;
		afs_job_log(j, "connected to %s (PostgreSQL %d)", t->display_url, PQserverVersion(s->conn) / 10000);
	}
	if (t->url && t->migrate) {
		PGconn *c = s->conn ? s->conn : s->admin;

		err = check_staging(s, c, s->conn ? PQdb(s->conn) : s->dbname);
		if (err != AFS_OK)
			return err;
	}
	err = verify_dump(s); /* progress: the verify step counts the dump's bytes */
	if (err == AFS_OK)
		afs_job_log(j, "db.dump read to its end by pg_restore");
	return err;
}

/* ------------------------------------------------------------ the flag */

static void notify(struct pg_state *s, const char *event, const char *outcome)
{
	char *payload = afs_report_notify(event, (long)getpid(), afs_job_archive_path(s->j), outcome);
	const char *params[] = { payload };
	PGresult *r;

	if (!payload)
		return;
	r = PQexecParams(s->conn, "SELECT pg_notify('archfs_restore', $1)", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		afs_job_warn(s->j, "NOTIFY archfs_restore failed: %s", PQresultErrorMessage(r));
	PQclear(r);
	free(payload);
}

static enum afs_err pg_flag_on(struct afs_job *j, void *state)
{
	struct pg_state *s = state;
	PGresult *r;
	bool got;

	if (!s->conn)
		return AFS_OK;
	r = query(s, "taking the restore's advisory lock",
		  "SELECT pg_try_advisory_lock(" "1634886504" ", " "1" ")", 0, NULL);
	if (!r)
		return AFS_E_FAILED;
	got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!got)
		return afs_job_fail_as(j, AFS_FAIL_REFUSED, AFS_E_BUSY,
				       "another restore holds the advisory lock (%d, %d) on this database",
				    AFS_PG_LOCK_KEY1, AFS_PG_LOCK_KEY2);
	s->flagged = true;
	afs_job_log(j, "advisory lock (%d, %d) taken; NOTIFY archfs_restore", AFS_PG_LOCK_KEY1, AFS_PG_LOCK_KEY2);
	notify(s, "start", NULL);
	return AFS_OK;
}

static void pg_flag_off(struct afs_job *j, void *state, const char *outcome)
{
	struct pg_state *s = state;
	PGresult *r;

	if (!s || !s->conn || !s->flagged)
		return;
	notify(s, "end", outcome);
	r = PQexec(s->conn, "SELECT pg_advisory_unlock(1634886504, 1)");
	PQclear(r);
	s->flagged = false;
}

/* ------------------------------------------------------------ snapshot */

static enum afs_err pg_snapshot(struct afs_job *j, void *state, const char *path)
{
	struct pg_state *s = state;
	char *pgd = tool(s, "pg_dump"), *out = NULL, tail[TAIL];
	const char *argv[] = { pgd, "--format=custom", "--no-owner", NULL, NULL };
	struct afs_proc_opts o = { .argv = argv, .setenv = (const char *const *)s->env, .line = pg_line, .ctx = s };
	enum afs_err err;
	int st;

	if (s->created) {
		free(pgd);
		return AFS_E_NOENT; /* an empty database of our own making */
	}
	if (!pgd || asprintf(&out, "--file=%s", path) < 0) {
		free(pgd);
		return afs_job_fail(j, AFS_E_NOMEM, "out of memory");
	}
	argv[3] = out;
	err = afs_proc_run(&o, &st, tail, sizeof(tail));
	free(pgd);
	free(out);
	if (err != AFS_OK)
		return afs_job_fail(j, AFS_E_FAILED, "pg_dump of the live database failed: %s", tail);
	return AFS_OK;
}

/* ------------------------------------------------------------- migrate */

/* Runs a statement on c; AFS_OK or the job's error "what: reason". */
static enum afs_err exec_on(struct pg_state *s, PGconn *c, const char *what, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	char why[512];
	enum afs_err err = AFS_OK;

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		err = afs_job_fail(s->j, AFS_E_FAILED, "%s: %s", what, pq_reason(c, why, sizeof(why)));
	PQclear(r);
	return err;
}

/* "DROP DATABASE IF EXISTS name", ending its sessions (a killed migrate
 * command's may linger) where the server can (13 and newer). */
static char *drop_sql(PGconn *c, const char *name)
{
	char *ident = PQescapeIdentifier(c, name, strlen(name)), *sql = NULL;

	if (ident && asprintf(&sql, "DROP DATABASE IF EXISTS %s%s", ident,
			      PQserverVersion(c) >= 130000 ? " WITH (FORCE)" : "") < 0)
		sql = NULL;
	PQfreemem(ident);
	return sql;
}

/* Drops the staging database this run made, if it still exists; a
 * failure is a warning (the next run drops it as a leftover). */
static void drop_staging(struct pg_state *s, const char *why)
{
	PGconn *c = s->conn ? s->conn : s->admin;
	char *sql, reason[512];
	PGresult *r;

	if (!s->staging_made || !c)
		return;
	s->staging_made = false;
	sql = drop_sql(c, s->staging);
	r = sql ? PQexec(c, sql) : NULL;
	if (PQresultStatus(r) == PGRES_COMMAND_OK)
		afs_job_log(s->j, "dropped the staging database %s%s", s->staging, why);
	else
		afs_job_warn(s->j, "the staging database %s could not be dropped (the next restore drops it): %s",
			     s->staging, pq_reason(c, reason, sizeof(reason)));
	PQclear(r);
	free(sql);
}

/* Replaces the table list restore() locks by every table of the migrated
 * staging database (c): the tables pg_dump --clean drops and recreates,
 * including those the migration added and the archive does not have. */
static enum afs_err staging_tables(struct pg_state *s, PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
				"WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' "
				"AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2");
	char why[512];
	size_t n;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return afs_job_fail(s->j, AFS_E_FAILED, "listing the staging database's tables: %s",
				    pq_reason(c, why, sizeof(why)));
	}
	for (size_t i = 0; i < s->ntables; i++)
		free(s->tables[i]);
	free(s->tables);
	n = (size_t)PQntuples(r) * 2;
	s->tables = calloc(n ? n : 1, sizeof(*s->tables));
	s->ntables = s->tables ? n : 0;
	for (size_t i = 0; s->tables && i < n; i++)
		if (!(s->tables[i] = strdup(PQgetvalue(r, (int)(i / 2), (int)(i % 2)))))
			s->toc_err = AFS_E_NOMEM;
	PQclear(r);
	if (!s->tables || s->toc_err != AFS_OK)
		return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
	return AFS_OK;
}

/* --migrate before the swap (backend.h): drops a leftover staging database
 * of archfs's, creates and marks a new one, restores db.dump into it (the
 * stream through pg_restore, as verify reads it), runs the migrate command
 * against it and lists its tables for restore().  The live database is not
 * touched; on failure or cancel staging is dropped at once. */
static enum afs_err pg_migrate(struct afs_job *j, void *state)
{
	struct pg_state *s = state;
	const struct afs_target *t = afs_job_target(j);
	char *comment = NULL, *ident = NULL, *lit = NULL, *sql = NULL, *pgr = tool(s, "pg_restore"), *dbarg = NULL;
	char *conn_arg = NULL, *lurl = libpq_url(t->url), *surl = NULL, *arch_rev = NULL, *live_rev = NULL;
	char *new_rev = NULL, tail[TAIL], why[512];
	const char *argv[] = { pgr, "--no-owner", "--exit-on-error", NULL, NULL };
	PGconn *sc = NULL;
	enum afs_err err = AFS_OK;
	int has;

	if (!s->conn || !s->staging)
		return afs_job_fail(j, AFS_E_INVAL, "--migrate: no staging database was prepared at verify");
	if (!pgr || !lurl || !(dbarg = dbname_conninfo(s->staging)) || asprintf(&conn_arg, "--dbname=%s", dbarg) < 0) {
		conn_arg = NULL;
		err = afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		goto out;
	}
	argv[3] = conn_arg;
	has = database_comment(s->conn, s->staging, &comment);
	if (has < 0) {
		err = afs_job_fail(j, AFS_E_FAILED, "--migrate: cannot look for the staging database %s: %s", s->staging,
				   pq_reason(s->conn, why, sizeof(why)));
		goto out;
	}
	if (has && strcmp(comment, s->staging_mark) != 0) {
		err = afs_job_fail(j, AFS_E_CONFLICT,
				   "--migrate: a database named %s exists and is not archfs's staging database: archfs "
				   "will not drop it", s->staging);
		goto out;
	}
	if (has) {
		afs_job_log(j, "dropping the staging database %s, a leftover of an earlier run that did not finish",
			    s->staging);
		sql = drop_sql(s->conn, s->staging);
		err = sql ? exec_on(s, s->conn, "dropping the leftover staging database", sql)
			  : afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		free(sql);
		sql = NULL;
		if (err != AFS_OK)
			goto out;
	}
	ident = PQescapeIdentifier(s->conn, s->staging, strlen(s->staging));
	lit = PQescapeLiteral(s->conn, s->staging_mark, strlen(s->staging_mark));
	if (!ident || !lit || asprintf(&sql, "CREATE DATABASE %s", ident) < 0) {
		sql = NULL;
		err = afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		goto out;
	}
	err = exec_on(s, s->conn, "--migrate: CREATE DATABASE of the staging database failed", sql);
	free(sql);
	sql = NULL;
	if (err != AFS_OK)
		goto out;
	s->staging_made = true;
	if (asprintf(&sql, "COMMENT ON DATABASE %s IS %s", ident, lit) < 0) {
		sql = NULL;
		err = afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		goto out;
	}
	err = exec_on(s, s->conn, "--migrate: marking the staging database", sql);
	if (err != AFS_OK)
		goto out;
	afs_job_log(j, "created the staging database %s; restoring db.dump into it", s->staging);
	afs_job_phase_bytes(j, afs_index_node(afs_job_index(j), s->dump)->size);
	err = stream_through(s, argv, pg_line, true, tail, sizeof(tail));
	if (err == AFS_E_FAILED)
		err = afs_job_fail(j, AFS_E_FAILED, "pg_restore into the staging database failed: %s", tail);
	else if (err == AFS_E_IO)
		err = afs_job_fail(j, err, "%s", tail);
	else if (err != AFS_OK && err != AFS_E_CANCELLED)
		err = afs_job_fail_as(j, AFS_FAIL_ARCHIVE, err, "db.dump in the archive cannot be read: %s", s->read_why);
	if (err != AFS_OK)
		goto out;
	sc = connect_other(lurl, s->staging, "archfs");
	if (!sc || PQstatus(sc) != CONNECTION_OK) {
		err = afs_job_fail(j, AFS_E_FAILED, "cannot connect to the staging database %s: %s", s->staging,
				   pq_reason(sc, why, sizeof(why)));
		goto out;
	}
	arch_rev = revision_of(sc);
	live_rev = revision_of(s->conn);
	PQfinish(sc); /* the migrate command has staging to itself */
	sc = NULL;
	afs_job_log(j, "the staging database %s holds db.dump at Alembic revision %s (live at %s): running the "
		       "migrate command on it", s->staging, arch_rev ? arch_rev : "none", live_rev ? live_rev : "none");
	surl = url_with_db(t->url, s->staging);
	if (!surl) {
		err = afs_job_fail(j, AFS_E_INVAL, "--migrate: the URL of the staging database cannot be made from %s",
				   t->display_url);
		goto out;
	}
	err = afs_job_migrate(j, surl);
	if (err != AFS_OK)
		goto out;
	sc = connect_other(lurl, s->staging, "archfs");
	if (!sc || PQstatus(sc) != CONNECTION_OK) {
		err = afs_job_fail(j, AFS_E_FAILED, "cannot connect to the migrated staging database %s: %s", s->staging,
				   pq_reason(sc, why, sizeof(why)));
		goto out;
	}
	err = staging_tables(s, sc);
	if (err != AFS_OK)
		goto out;
	new_rev = revision_of(sc);
	s->migrated = true;
	afs_job_log(j, "the migrated staging database is at Alembic revision %s, with %zu tables",
		    new_rev ? new_rev : "none", s->ntables / 2);
out:
	PQfinish(sc);
	if (err != AFS_OK)
		drop_staging(s, err == AFS_E_CANCELLED ? ": cancelled, nothing was changed"
						      : ": the restore stopped before the swap, nothing was changed");
	if (surl)
		memset(surl, 0, strlen(surl)); /* it may hold the password */
	if (lurl)
		memset(lurl, 0, strlen(lurl));
	free(surl);
	free(lurl);
	free(comment);
	PQfreemem(ident);
	PQfreemem(lit);
	free(sql);
	free(pgr);
	free(dbarg);
	free(conn_arg);
	free(arch_rev);
	free(live_rev);
	free(new_rev);
	return err;
}

/* ------------------------------------------------------------ restore */

/* Appends "a"."b" for every table of the dump that exists in the live
 * database to *sql; the count in *n. */
static enum afs_err existing_tables(struct pg_state *s, char **list, size_t *n)
{
	PGresult *r;
	char *sql = NULL;
	size_t len = 0;
	FILE *f;

	*list = NULL;
	*n = 0;
	f = open_memstream(&sql, &len);
	if (!f)
		return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
	fputs("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
	      "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND (false", f);
	for (size_t i = 0; i + 1 < s->ntables; i += 2) {
		char *a = PQescapeLiteral(s->conn, s->tables[i], strlen(s->tables[i]));
		char *b = PQescapeLiteral(s->conn, s->tables[i + 1], strlen(s->tables[i + 1]));

		if (a && b)
			fprintf(f, " OR (n.nspname = %s AND c.relname = %s)", a, b);
		PQfreemem(a);
		PQfreemem(b);
	}
	fputs(") ORDER BY 1", f);
	fclose(f);
	if (!sql)
		return afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
	r = query(s, "listing the live tables", sql, 0, NULL);
	free(sql);
	if (!r)
		return AFS_E_FAILED;
	f = open_memstream(list, &len);
	for (int i = 0; f && i < PQntuples(r); i++)
		fprintf(f, "%s%s", i ? ", " : "", PQgetvalue(r, i, 0));
	*n = (size_t)PQntuples(r);
	PQclear(r);
	if (f)
		fclose(f);
	return *list ? AFS_OK : afs_job_fail(s->j, AFS_E_NOMEM, "out of memory");
}

#define XID_MARK "archfs: xid "
#define COMMITTING_MARK "archfs: committing"
#define COMMITTED_MARK "archfs: committed"

/* Opens the transaction and has psql tell its id (XID_MARK), by which the
 * server can say afterwards whether it committed. */
#define BEGIN_SQL "BEGIN;\nSELECT txid_current() AS archfs_xid \\gset\n\\echo " XID_MARK ":archfs_xid\n"

/* The statement that locks every existing table the dump replaces at once,
 * retried so that it never waits while holding some of them. */
#define LOCK_SQL \
	"SET lock_timeout = '" LOCK_RETRY_TIMEOUT "';\n" \
	"DO $archfs$\n" \
	"BEGIN\n" \
	"  LOOP\n" \
	"    BEGIN\n" \
	"      LOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n" \
	"      EXIT;\n" \
	"    EXCEPTION WHEN lock_not_available THEN\n" \
	"      PERFORM pg_sleep(0.02 + random() * 0.08);\n" \
	"    END;\n" \
	"  END LOOP;\n" \
	"END\n" \
	"$archfs$;\n" \
	"SET lock_timeout = 0;\n"

/* psql's line that waits in the test gate name ("\\! ...\n"), or "" when
 * the gate is not set; malloc'd, NULL when out of memory. */
static char *gate_line(struct afs_job *j, const char *name)
{
	char *sh = afs_job_test_gate_shell(j, name), *out = NULL;

	if (!sh)
		return strdup("");
	if (asprintf(&out, "\\! %s\n", sh) < 0)
		out = NULL;
	free(sh);
	return out;
}

/* The statements that open the restore's transaction: BEGIN, then the lock
 * of the n existing tables (none when n is 0).  With the test gates
 * "pg-prelock" and "pg-locked", psql waits in a gate just before the lock
 * statement (the transaction open, nothing locked) and just after it (every
 * table locked, nothing of the dump run yet). */
static char *preamble(struct afs_job *j, const char *tables, size_t n)
{
	char *before = gate_line(j, "pg-prelock"), *after = gate_line(j, "pg-locked"), *lock = NULL, *out = NULL;

	if (n > 0 && asprintf(&lock, LOCK_SQL, tables) < 0)
		lock = NULL;
	if (before && after && (n == 0 || lock) &&
	    asprintf(&out, BEGIN_SQL "%s%s%s", before, lock ? lock : "", after) < 0)
		out = NULL;
	free(before);
	free(after);
	free(lock);
	return out;
}

/* What follows the dump: COMMIT between the two marks.  With the test gates
 * "pg-precommit" and "pg-commit", psql waits in a gate just before COMMIT
 * and just after it, before it says so (the moments a cancel, a lost
 * connection or a killed psql leave the outcome unknown here). */
static char *commit_suffix(struct afs_job *j)
{
	char *pre = afs_job_test_gate_shell(j, "pg-precommit"), *gate = afs_job_test_gate_shell(j, "pg-commit");
	char *out = NULL;

	if (asprintf(&out, "\\echo " COMMITTING_MARK "\n%s%s%sCOMMIT;\n%s%s%s\\echo " COMMITTED_MARK "\n",
		     pre ? "\\! " : "", pre ? pre : "", pre ? "\n" : "", gate ? "\\! " : "", gate ? gate : "",
		     gate ? "\n" : "") < 0)
		out = NULL;
	free(pre);
	free(gate);
	return out;
}

static void restore_line(void *ctx, const char *line)
{
	struct pg_state *s = ctx;

	if (strcmp(line, COMMITTED_MARK) == 0) {
		s->committed = true;
		afs_job_committed(s->j);
		return;
	}
	if (strcmp(line, COMMITTING_MARK) == 0) {
		s->commit_sent = true;
		return;
	}
	if (strncmp(line, XID_MARK, strlen(XID_MARK)) == 0) {
		s->xid = strtoll(line + strlen(XID_MARK), NULL, 10);
		return;
	}
	afs_job_log(s->j, "pg: %s", line);
}

/* Removes the lines of archfs's own marks ("archfs: ...") from the
 * output tail, which error messages quote. */
static void drop_marks(char *tail)
{
	char *in = tail, *out = tail;

	while (*in) {
		size_t n = strcspn(in, "\n");
		bool mark = strncmp(in, "archfs: ", 8) == 0;

		if (!mark) {
			if (out != tail)
				*out++ = '\n';
			memmove(out, in, n);
			out += n;
		}
		in += n + (in[n] == '\n');
	}
	*out = '\0';
}

/* txid_status() of the restore's transaction on c: "committed", "aborted",
 * "in progress" (malloc'd), or NULL when the server cannot say. */
static char *xid_status(PGconn *c, long long xid)
{
	char num[32];
	const char *params[] = { num };
	PGresult *r;
	char *out = NULL;

	snprintf(num, sizeof(num), "%lld", xid);
	r = PQexecParams(c, "SELECT txid_status($1::bigint)", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		out = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

/* The restore transaction's status as c sees it, asked again while it is
 * "in progress" (its session was just ended) for up to 10 s; malloc'd, or
 * NULL when c gets no answer. */
static char *settled_status(PGconn *c, long long xid)
{
	struct timespec pause = { 0, 100 * 1000000L };
	char *st = NULL;

	for (int i = 0; c && i < 100; i++) {
		free(st);
		st = xid_status(c, xid);
		if (!st || strcmp(st, "in progress") != 0)
			break;
		nanosleep(&pause, NULL);
	}
	return st;
}

/* After a run that sent COMMIT but did not see it succeed: asks the server
 * (on our own session, or a new one when that gets no answer) whether the
 * restore's transaction committed.  Committed: s->committed is set and the
 * job told.  False when the server cannot say. */
static bool find_commit_outcome(struct pg_state *s)
{
	const struct afs_target *t = afs_job_target(s->j);
	char *st = NULL, *url;
	PGconn *own;
	bool known;

	if (s->xid <= 0)
		return false;
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
		st = settled_status(s->conn, s->xid);
	if (!st) {
		url = libpq_url(t->url);
		own = url ? connect_url(url, "archfs") : NULL;
		free(url);
		if (own && PQstatus(own) == CONNECTION_OK)
			st = settled_status(own, s->xid);
		PQfinish(own);
	}
	afs_job_log(s->j, "the server says the restore's transaction %lld is %s", s->xid, st ? st : "(no answer)");
	known = st && strcmp(st, "in progress") != 0;
	if (st && strcmp(st, "committed") == 0) {
		s->committed = true;
		afs_job_committed(s->j);
	}
	free(st);
	return known;
}

/* Describes the sessions in the array literal pids ("{1,2}"). */
static char *describe(struct pg_state *s, const char *pids)
{
	const char *params[] = { pids };
	PGresult *r = PQexecParams(s->conn,
				   "SELECT string_agg(format('%s (%s%s)', pid, coalesce(state, '?'), "
				   "CASE WHEN application_name <> '' THEN ', ' || application_name ELSE '' END), ', ') "
				   "FROM pg_stat_activity WHERE pid = ANY($1::int[])",
				   1, NULL, params, NULL, NULL, 0);
	char *out = strdup(PQresultStatus(r) == PGRES_TUPLES_OK && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : pids);

	PQclear(r);
	return out;
}

static void terminate(struct pg_state *s, const char *pids)
{
	const char *params[] = { pids };
	PGresult *r = PQexecParams(s->conn, "SELECT pg_terminate_backend(p) FROM unnest($1::int[]) p", 1, NULL, params,
				   NULL, NULL, 0);

	PQclear(r);
}

/* Seconds on the monotonic clock. */
static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Polled by the child runner: finds the restoring session, watches what
 * blocks it, and ends it on cancel or when --lock-wait runs out (measured
 * from the first poll that saw it blocked; the messages say how long it
 * was). */
static bool watch(void *ctx)
{
	struct pg_state *s = ctx;
	const struct afs_target *t = afs_job_target(s->j);
	char pidbuf[32];
	const char *params[] = { s->appname, pidbuf };
	double now = mono_now(), waited;
	PGresult *r;
	bool stop = false;

	if (s->committed)
		return false;
	if (s->commit_sent) { /* stopping psql now would only hide the outcome */
		if (afs_job_cancelled(s->j) && !s->late_cancel)
			afs_job_warn(s->j, "cancel: COMMIT is already on its way to the server; waiting for its outcome");
		s->late_cancel = s->late_cancel || afs_job_cancelled(s->j);
		return false;
	}
	if (s->backend_pid == 0) {
		r = PQexecParams(s->conn, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", 1, NULL,
				 params, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			s->backend_pid = atoi(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	if (afs_job_cancelled(s->j)) {
		stop = true;
	} else if (s->backend_pid) {
		snprintf(pidbuf, sizeof(pidbuf), "%d", s->backend_pid);
		params[0] = pidbuf;
		r = PQexecParams(s->conn, "SELECT pg_blocking_pids($1::int)::text", 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "{}") != 0) {
			char *who = NULL;

			if (!s->blocked_since)
				s->blocked_since = now;
			s->last_blocked = now;
			waited = now - s->blocked_since;
			if (waited >= (double)t->lock_wait) {
				who = describe(s, PQgetvalue(r, 0, 0));
				if (t->terminate_blockers) {
					afs_job_warn(s->j, "terminated sessions %s: they blocked the restore for %.1f s "
						     "(--lock-wait %u)", who ? who : "?", waited, t->lock_wait);
					terminate(s, PQgetvalue(r, 0, 0));
					s->blocked_since = 0;
				} else {
					afs_job_fail(s->j, AFS_E_BUSY,
						     "the restore gave up after %.1f s waiting for locks held by sessions "
						     "%s (--lock-wait %u); nothing was changed (end them, raise "
						     "--lock-wait, or use --terminate-blockers)",
						     waited, who ? who : "?", t->lock_wait);
					s->blockers = who;
					who = NULL;
					stop = true;
				}
			}
			free(who);
		} else if (s->blocked_since && now - s->last_blocked > 2) {
			s->blocked_since = 0; /* the retry loop leaves gaps: only a clear spell resets */
		}
		PQclear(r);
	}
	if (stop && s->backend_pid && !s->committed) {
		snprintf(pidbuf, sizeof(pidbuf), "{%d}", s->backend_pid);
		terminate(s, pidbuf); /* its transaction rolls back */
	}
	return stop;
}

static enum afs_err pg_restore_db(struct afs_job *j, void *state)
{
	struct pg_state *s = state;
	char *pgr = tool(s, "pg_restore"), *psql = tool(s, "psql"), *pgd = tool(s, "pg_dump"), *tables = NULL;
	char *pre = NULL, *app = NULL, *dbarg = NULL, *conn_arg = NULL, *suffix = commit_suffix(j), tail[TAIL];
	const char *restore_argv[] = { pgr, "--clean", "--if-exists", "--no-owner", "--file=-", NULL };
	const char *dump_argv[] = { pgd, "--clean", "--if-exists", "--no-owner", "--format=plain", NULL, NULL };
	const char *psql_argv[] = { psql, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--output=/dev/null",
				    "--file=-", NULL };
	char *env[MAX_ENV + 2] = { 0 };
	size_t n = 0, ntab = 0;
	struct afs_proc_opts o = { .argv = restore_argv, .pipe_to = psql_argv, .input = feed_dump, .line = restore_line,
				   .cancelled = watch, .ctx = s, .relay_suffix = suffix };
	enum afs_err err;
	int st;

	if (!pgr || !psql || !pgd || !suffix) {
		err = afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		goto out;
	}
	s->xid = 0;
	s->commit_sent = s->late_cancel = false;
	if (s->migrated) { /* the migrated staging database, not db.dump */
		if (!(dbarg = dbname_conninfo(s->staging)) || asprintf(&conn_arg, "--dbname=%s", dbarg) < 0) {
			conn_arg = NULL;
			err = afs_job_fail(j, AFS_E_NOMEM, "out of memory");
			goto out;
		}
		dump_argv[5] = conn_arg;
		o.argv = dump_argv;
		o.input = NULL;
	}
	err = existing_tables(s, &tables, &ntab);
	if (err != AFS_OK)
		goto out;
	pre = preamble(j, tables, ntab);
	snprintf(s->appname, sizeof(s->appname), "archfs-restore-%ld-%ld", (long)getpid(), (long)time(NULL));
	if (!pre || asprintf(&app, "PGAPPNAME=%s", s->appname) < 0) {
		app = NULL;
		err = afs_job_fail(j, AFS_E_NOMEM, "out of memory");
		goto out;
	}
	for (; n < MAX_ENV && s->env[n]; n++)
		env[n] = s->env[n];
	env[n] = app;
	o.setenv = (const char *const *)env;
	o.relay_prefix = pre;
	s->backend_pid = 0;
	s->blocked_since = 0;
	if (s->migrated) {
		afs_job_log(j, "locking %zu existing tables, then pg_dump --clean --if-exists --no-owner of the staging "
			       "database %s | psql, in one transaction", ntab, s->staging);
		err = afs_proc_run(&o, &st, tail, sizeof(tail));
	} else {
		afs_job_log(j, "locking %zu existing tables, then pg_restore --clean --if-exists --no-owner | psql, "
			       "in one transaction", ntab);
		afs_job_phase_bytes(j, afs_index_node(afs_job_index(j), s->dump)->size);
		s->off = 0;
		s->track = true;
		err = afs_stream_open(afs_job_archive(j), afs_job_index(j), s->dump, &s->s);
		if (err != AFS_OK) {
			afs_job_fail(j, err, "db.dump cannot be read: %s", afs_strerror(err));
			goto out;
		}
		err = afs_proc_run(&o, &st, tail, sizeof(tail));
		afs_stream_close(s->s);
		s->s = NULL;
	}
	drop_marks(tail);
	if (!s->committed && s->commit_sent && !find_commit_outcome(s)) {
		afs_job_commit_unknown(j);
		err = afs_job_fail(j, AFS_E_FAILED,
				   "the restore's COMMIT was sent, then %s, and the server cannot say whether it went "
				   "through (transaction %lld): check the database",
				   err == AFS_E_CANCELLED ? "psql was stopped" : tail[0] ? tail : "psql failed", s->xid);
		goto out;
	}
	if (s->committed && err != AFS_OK) {
		afs_job_warn(j, "psql ended without saying so, but the server committed the restore's transaction "
				"%lld: the restore went through", s->xid);
		err = AFS_OK;
	} else if (s->committed) {
		err = AFS_OK; /* psql printed the mark after COMMIT succeeded */
	} else if (err == AFS_E_CANCELLED) {
		if (!s->blockers)
			afs_job_log(j, "cancelled: the restore's transaction was rolled back");
		else
			err = AFS_E_BUSY;
	} else if (err == AFS_OK) {
		err = afs_job_fail(j, AFS_E_FAILED, "the restore did not commit: %s", tail[0] ? tail : "no reason given");
	} else {
		err = afs_job_fail(j, AFS_E_FAILED, "%s | psql failed, the transaction was rolled back: %s",
				   s->migrated ? "pg_dump of the staging database" : "pg_restore",
				   tail[0] ? tail : afs_strerror(err));
	}
out:
	drop_staging(s, s->committed ? ": its contents are the live database's now"
			: s->commit_sent ? "" : ": nothing was changed");
	free(suffix);
	free(pgr);
	free(psql);
	free(pgd);
	free(dbarg);
	free(conn_arg);
	free(tables);
	free(pre);
	free(app);
	return err;
}

static enum afs_err pg_revision(struct afs_job *j, void *state, char **rev)
{
	struct pg_state *s = state;
	PGresult *r;

	*rev = NULL;
	if (!s->conn)
		return AFS_OK;
	r = PQexec(s->conn, "SELECT version_num FROM alembic_version LIMIT 1");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		*rev = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return AFS_OK;
}

static void pg_release(void *state)
{
	struct pg_state *s = state;

	if (!s)
		return;
	drop_staging(s, ": the restore ended before it was used");
	if (s->conn)
		PQfinish(s->conn); /* also releases the advisory lock */
	if (s->admin)
		PQfinish(s->admin);
	free(s->dbname);
	for (size_t i = 0; i < MAX_ENV && s->env[i]; i++) {
		/* the password must not linger in freed memory */
		memset(s->env[i], 0, strlen(s->env[i]));
		free(s->env[i]);
	}
	for (size_t i = 0; i < s->ntables; i++)
		free(s->tables[i]);
	free(s->tables);
	free(s->bindir);
	afs_pgdump_header_release(&s->hdr);
	free(s->blockers);
	free(s->staging);
	free(s->staging_mark);
	afs_stream_close(s->s);
	free(s);
}

/* ---------------------------------------------------------- masking */

/* The options target.c masks (afs_target_display): their values are
 * secrets, or name where one is kept. */
static bool secret_option(const char *keyword)
{
	static const char *const keys[] = { "password", "sslpassword", "passfile", "sslkey" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keyword, keys[i]) == 0)
			return true;
	return false;
}

/* Frees libpq's parse of a connection string, its secrets overwritten. */
static void free_options(PQconninfoOption *opts)
{
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (o->val && secret_option(o->keyword))
			memset(o->val, 0, strlen(o->val));
	PQconninfoFree(opts);
}

/* True when shown (libpq's parse of the display form) holds no secret
 * (each is absent, empty or AFS_TARGET_MASK) and every other option of
 * orig unchanged; a dbname that is itself a connection string is compared
 * in its display form. */
static bool shows_no_secret(const PQconninfoOption *orig, const PQconninfoOption *shown)
{
	for (; orig->keyword && shown->keyword; orig++, shown++) {
		const char *want = orig->val && orig->val[0] ? orig->val : NULL;
		const char *got = shown->val && shown->val[0] ? shown->val : NULL;
		bool same;

		if (strcmp(orig->keyword, shown->keyword) != 0)
			return false;
		if (secret_option(orig->keyword)) {
			if (got && strcmp(got, AFS_TARGET_MASK) != 0)
				return false;
			continue;
		}
		same = (!want && !got) || (want && got && strcmp(want, got) == 0);
		if (!same && want && got && strcmp(orig->keyword, "dbname") == 0) {
			char *masked = afs_target_display(want);

			same = masked && strcmp(masked, got) == 0;
			free_secret(masked);
		}
		if (!same)
			return false;
	}
	return !orig->keyword && !shown->keyword;
}

/* The first line of libpq's parse error, with every quoted part that is
 * not a bare option name or a separator (it may be the URL, or a piece of
 * the password) replaced by "...". */
static void parse_reason(const char *err, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = err; *p && *p != '\n' && o + 8 < outlen;) {
		const char *close = *p == '"' ? strchr(p + 1, '"') : NULL;
		size_t n = close ? (size_t)(close - p - 1) : 0;

		if (!close) {
			out[o++] = *p++;
			continue;
		}
		if (n > 0 && n <= 24 && o + n + 2 < outlen &&
		    (strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_") == n || (n == 1 && strchr("=]:@/?&'", p[1])))) {
			memcpy(out + o, p, n + 2);
			o += n + 2;
		} else {
			memcpy(out + o, "\"...\"", 5);
			o += 5;
		}
		p = close + 1;
	}
	out[o] = '\0';
	afs_target_mask_password(out);
}

/* backend.h mask(): libpq's own reading of the URL (PQconninfoParse)
 * decides what is a secret; the display form target.c makes is kept only
 * when libpq, reading it, finds no secret and the same other options. */
static char *pg_mask(const char *url, char *msg, size_t msglen)
{
	char *lurl = libpq_url(url), *shown = NULL, *lshown = NULL, *err = NULL, *out = NULL, why[256];
	PQconninfoOption *orig = lurl ? PQconninfoParse(lurl, &err) : NULL, *disp = NULL;

	if (!orig) {
		if (err) {
			parse_reason(err, why, sizeof(why));
			snprintf(msg, msglen, "not a connection string libpq accepts: %s", why);
		}
		goto out;
	}
	shown = afs_target_display(url);
	lshown = shown ? libpq_url(shown) : NULL;
	disp = lshown ? PQconninfoParse(lshown, NULL) : NULL;
	if (disp && shows_no_secret(orig, disp)) {
		out = shown;
		shown = NULL;
	} else if (shown) {
		out = strdup("(a PostgreSQL connection string that archfs cannot show without its password)");
	}
out:
	PQfreemem(err);
	free_options(orig);
	free_options(disp);
	free_secret(lurl);
	free_secret(lshown);
	free_secret(shown);
	return out;
}

const struct afs_db_backend afs_pg_backend = {
	.name = "postgresql",
	.kind = AFS_DB_POSTGRESQL,
	.dump_name = "db.dump",
	.inspect = pg_inspect,
	.verify = pg_verify,
	.create = pg_create,
	.discard = pg_discard,
	.snapshot = pg_snapshot,
	.migrate = pg_migrate,
	.restore = pg_restore_db,
	.revision = pg_revision,
	.release = pg_release,
	.flag_on = pg_flag_on,
	.flag_off = pg_flag_off,
	.mask = pg_mask,
};
