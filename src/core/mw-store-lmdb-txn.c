/* mailward core, LMDB state store: errors, the fault guard (see
   mw-store-lmdb.h), transactions, and moving a damaged store aside. */

#include "mw-store-lmdb.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* getpid() is a system call: cached, forgotten in a fork()ed child */
static pid_t cached_pid = 0;
static bool cached_pid_atfork = false;

void mw_lmdb_set_corrupt(struct lmdb_store *s, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	mw_store_set_errorv(&s->base, fmt, args);
	va_end(args);
	s->corrupt = true;
}

bool mw_lmdb_rc_is_corrupt(int rc)
{
	return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
		rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
		/* a read transaction whose page fetch failed */
		rc == MDB_BAD_TXN;
}

sigjmp_buf *mw_lmdb_guard_jmp = NULL;
volatile sig_atomic_t mw_lmdb_guard_signo = 0;
static unsigned int guard_handlers = 0;
static struct sigaction guard_old_segv, guard_old_bus;

static void store_fault_handler(int signo, siginfo_t *si, void *uctx)
{
	sigjmp_buf *jmp = mw_lmdb_guard_jmp;

	(void)si;
	(void)uctx;
	if (jmp != NULL) {
		mw_lmdb_guard_jmp = NULL;
		mw_lmdb_guard_signo = signo;
		siglongjmp(*jmp, 1);
	}
	/* not inside the store: let the fault happen as without us */
	(void)sigaction(signo, signo == SIGBUS ? &guard_old_bus :
			&guard_old_segv, NULL);
}

void mw_lmdb_assert_handler(MDB_env *env, const char *msg)
{
	sigjmp_buf *jmp = mw_lmdb_guard_jmp;

	(void)env;
	(void)msg;
	if (jmp != NULL) {
		mw_lmdb_guard_jmp = NULL;
		mw_lmdb_guard_signo = SIGABRT;
		siglongjmp(*jmp, 1);
	}
	/* LMDB calls abort() after this returns */
}

void mw_lmdb_guard_ref(void)
{
	struct sigaction sa;

	if (guard_handlers++ > 0)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = store_fault_handler;
	/* NODEFER: the jump out leaves the signal unblocked */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGSEGV, &sa, &guard_old_segv);
	(void)sigaction(SIGBUS, &sa, &guard_old_bus);
}

void mw_lmdb_guard_unref(void)
{
	if (guard_handlers == 0 || --guard_handlers > 0)
		return;
	(void)sigaction(SIGSEGV, &guard_old_segv, NULL);
	(void)sigaction(SIGBUS, &guard_old_bus, NULL);
}
static void store_pid_atfork_child(void)
{
	cached_pid = 0;
}

pid_t mw_lmdb_getpid(void)
{
	if (!cached_pid_atfork) {
		/* (handlers of a plugin are removed when it is unloaded) */
		if (pthread_atfork(NULL, NULL, store_pid_atfork_child) != 0)
			return getpid();	/* no handler: no cache */
		cached_pid_atfork = true;
	}
	if (cached_pid == 0)
		cached_pid = getpid();
	return cached_pid;
}

/* ---- transactions ---- */

int mw_lmdb_txn_begin(struct lmdb_store *s, unsigned int flags,
		      MDB_txn **txn_r)
{
	unsigned int attempt;
	int rc;

	if (s->pid != mw_lmdb_getpid()) {
		store_set_error(s, "handle inherited over fork() used");
		return -1;
	}
	if (s->txn_active) {
		store_set_error(s, "nested store call (from an iteration "
				"callback?)");
		return -1;
	}
	for (attempt = 0;; attempt++) {
		rc = mdb_txn_begin(s->env, NULL, flags, txn_r);
		if (rc != MDB_MAP_RESIZED || attempt >= 3)
			break;
		/* another process grew the map: adopt its size */
		rc = mdb_env_set_mapsize(s->env, 0);
		if (rc != 0)
			break;
	}
	if (rc != 0) {
		store_set_error(s, "mdb_txn_begin() failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	s->txn_active = true;
	s->cur_txn = *txn_r;
	s->cur_txn_write = (flags & MDB_RDONLY) == 0;
	return 0;
}

void mw_lmdb_txn_abort(struct lmdb_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	s->txn_active = false;
	s->cur_txn = NULL;
}

int mw_lmdb_txn_commit(struct lmdb_store *s, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn); /* frees txn even on failure */

	s->txn_active = false;
	s->cur_txn = NULL;
	if (mw_lmdb_rc_is_corrupt(rc))
		s->corrupt = true;
	return rc;
}

static int store_grow(struct lmdb_store *s)
{
	MDB_envinfo info;
	size_t newsize;
	int rc;

	rc = mdb_env_info(s->env, &info);
	if (rc != 0) {
		store_set_error(s, "mdb_env_info() failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	if ((uint64_t)info.me_mapsize >= MW_STORE_MAX_MAPSIZE) {
		store_set_error(s, "store full: map size reached the limit "
				"of %llu bytes",
				(unsigned long long)MW_STORE_MAX_MAPSIZE);
		return -1;
	}
	newsize = info.me_mapsize * 2;
	if ((uint64_t)newsize > MW_STORE_MAX_MAPSIZE)
		newsize = (size_t)MW_STORE_MAX_MAPSIZE;
	rc = mdb_env_set_mapsize(s->env, newsize);
	if (rc != 0) {
		store_set_error(s, "mdb_env_set_mapsize(%zu) failed: %s",
				newsize, mdb_strerror(rc));
		return -1;
	}
	s->map_grows++;
	return 0;
}

int mw_lmdb_write(struct lmdb_store *s, const char *what,
		  mw_lmdb_txn_fn *fn, void *ctx)
{
	MDB_txn *txn;
	int rc;

	for (;;) {
		if (mw_lmdb_txn_begin(s, 0, &txn) < 0)
			return -1;
		rc = fn(s, txn, ctx);
		if (rc == MW_RC_NOCHANGE) {
			/* read-only in effect: no page written, no sync */
			mw_lmdb_txn_abort(s, txn);
			return 0;
		}
		if (rc == 0)
			rc = mw_lmdb_txn_commit(s, txn);
		else
			mw_lmdb_txn_abort(s, txn);
		if (rc == 0)
			return 0;
		if (rc == MDB_MAP_FULL) {
			if (store_grow(s) < 0)
				return -1;
			continue;
		}
		if (rc != MW_RC_FAILED) {
			store_set_error(s, "%s failed: %s", what,
					mdb_strerror(rc));
			if (mw_lmdb_rc_is_corrupt(rc))
				s->corrupt = true;
		}
		return -1;
	}
}

/* Reports an LMDB error of a read operation. */
int mw_lmdb_read_error(struct lmdb_store *s, const char *what, int rc)
{
	if (rc != MW_RC_FAILED) {
		store_set_error(s, "%s failed: %s", what, mdb_strerror(rc));
		if (mw_lmdb_rc_is_corrupt(rc))
			s->corrupt = true;
	}
	return -1;
}

int mw_lmdb_read_result(struct lmdb_store *s, const char *what, int rc,
			const char **error_r)
{
	if (rc == 0)
		return 1;
	if (rc == MDB_NOTFOUND)
		return 0;
	(void)mw_lmdb_read_error(s, what, rc);
	return store_fail(s, error_r);
}

int mw_lmdb_read(struct lmdb_store *s, const char *what, mw_lmdb_txn_fn *fn,
		 void *ctx, const char **error_r)
{
	MDB_txn *txn;
	int rc;

	if (mw_lmdb_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = fn(s, txn, ctx);
	mw_lmdb_txn_abort(s, txn);
	return mw_lmdb_read_result(s, what, rc, error_r);
}

/* snprintf() into a buffer that may truncate (paths in messages). */
int mw_lmdb_read_guarded(struct lmdb_store *s, const char *what,
			 mw_lmdb_txn_fn *fn, void *ctx, const char **error_r)
{
	STORE_GUARDED(s, error_r, mw_lmdb_read(s, what, fn, ctx, error_r));
}

static void MW_ATTR_FORMAT(3, 4)
fmt_buf(char *buf, size_t size, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(buf, size, fmt, args);
	va_end(args);
}

int mw_lmdb_quarantine(struct lmdb_store *s, bool faulted,
		       const char *why)
{
	char data[PATH_MAX + 16], lock[PATH_MAX + 16];
	char target[PATH_MAX + 64], stamp[32], reason[600];
	sigjmp_buf buf;
	struct stat st;
	struct tm tm;
	time_t now = time(NULL);

	if (why != NULL) {
		fmt_buf(reason, sizeof(reason), "corrupt store (%s)",
			       why);
	} else {
		/* the error set by the failing call, without its prefix */
		const char *p = strstr(s->base.error, ": ");

		fmt_buf(reason, sizeof(reason), "%s",
			       p != NULL ? p + 2 : s->base.error);
	}
	/* let go of the environment. After a fault LMDB's state is unknown
	   (a transaction may link cursors on the stack frames the jump
	   left): it is abandoned, never touched again (its memory, map and
	   descriptors stay until the process ends; a write transaction's
	   lock too, which only processes still using the moved file wait
	   for). An error LMDB returned left it consistent: close it. */
	if (!faulted && sigsetjmp(buf, 0) == 0) {
		mw_lmdb_guard_jmp = &buf;
		if (s->cur_txn != NULL && s->cur_txn_write)
			mdb_txn_abort(s->cur_txn);
		s->cur_txn = NULL;
		if (s->env != NULL)
			mdb_env_close(s->env);
	}
	mw_lmdb_guard_jmp = NULL;
	s->env = NULL;
	s->cur_txn = NULL;
	s->txn_active = false;
	s->dead = true;
	mw_lmdb_stores_unlink(s);

	fmt_buf(data, sizeof(data), "%s/data.mdb", s->base.path);
	fmt_buf(lock, sizeof(lock), "%s/lock.mdb", s->base.path);
	(void)gmtime_r(&now, &tm);
	(void)strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	fmt_buf(target, sizeof(target), "%s.corrupt.%s", data, stamp);
	if (stat(data, &st) < 0 || st.st_dev != s->data_dev ||
	    st.st_ino != s->data_ino) {
		fmt_buf(s->base.error, sizeof(s->base.error),
			       "mailward store %s: %s; already moved aside by "
			       "another process", s->base.path, reason);
		return -1;
	}
	if (access(target, F_OK) == 0) {
		fmt_buf(target, sizeof(target), "%s.corrupt.%s.%ld",
			       data, stamp, (long)getpid());
	}
	if (rename(data, target) < 0) {
		fmt_buf(s->base.error, sizeof(s->base.error),
			       "mailward store %s: %s; moving %s aside to %s "
			       "failed: %s", s->base.path, reason, data, target,
			       strerror(errno));
		return -1;
	}
	(void)unlink(lock);
	mw_lmdb_create_fresh(s->base.path, now);
	free(s->base.reset_path);
	s->base.reset_path = strdup(target);
	fmt_buf(s->base.error, sizeof(s->base.error),
		       "mailward store %s: %s: moved aside to %s; the next "
		       "session starts with a fresh store", s->base.path, reason,
		       target);
	return 0;
}

