/* mailward core, LMDB state store: reader slots and statistics. */

#include "mw-store-lmdb.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int store_reader_check(struct lmdb_store *s, unsigned int *cleared_r,
			      const char **error_r)
{
	int rc, dead = 0;

	rc = mdb_reader_check(s->env, &dead);
	if (rc != 0) {
		store_set_error(s, "mdb_reader_check() failed: %s",
				mdb_strerror(rc));
		return store_fail(s, error_r);
	}
	if (cleared_r != NULL)
		*cleared_r = dead < 0 ? 0 : (unsigned int)dead;
	return 0;
}

int mw_lmdb_reader_check(struct mw_store *store, unsigned int *cleared_r,
			 const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_reader_check(s, cleared_r, error_r));
}

struct reader_count_ctx {
	pid_t self;
	unsigned int count;
};

static int reader_list_cb(const char *msg, void *context)
{
	struct reader_count_ctx *ctx = context;
	char *end;
	long pid;

	/* lines: "%10d %zx %s\n"; the header line does not parse */
	pid = strtol(msg, &end, 10);
	if (end != msg && pid > 0 && (pid_t)pid != ctx->self)
		ctx->count++;
	return 0;
}

static int store_reader_count_others(struct lmdb_store *s,
				     unsigned int *count_r,
				     const char **error_r)
{
	struct reader_count_ctx ctx = { getpid(), 0 };
	int rc;

	rc = mdb_reader_list(s->env, reader_list_cb, &ctx);
	if (rc < 0) {
		store_set_error(s, "mdb_reader_list() failed: %s",
				mdb_strerror(rc));
		return store_fail(s, error_r);
	}
	*count_r = ctx.count;
	return 0;
}

int mw_lmdb_reader_count_others(struct mw_store *store, unsigned int *count_r,
				const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_reader_count_others(s, count_r, error_r));
}

/* Pages on LMDB's freelist (DBI 0): each value is an ID list whose first
   element is its length, as mdb_stat -f reads it. */
int mw_lmdb_count_free_pages(MDB_txn *txn, uint64_t *count_r)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n;
	int rc;

	*count_r = 0;
	rc = mdb_cursor_open(txn, 0, &cur);
	if (rc != 0)
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		if (v.mv_size < sizeof(size_t))
			continue;
		memcpy(&n, v.mv_data, sizeof(n));
		*count_r += n;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int store_get_stat(struct lmdb_store *s, struct mw_store_stat *stat_r,
			  const char **error_r)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	MDB_txn *txn;
	int fd, rc;

	memset(stat_r, 0, sizeof(*stat_r));
	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &st)) != 0 ||
	    (rc = mdb_env_get_fd(s->env, &fd)) != 0) {
		mw_lmdb_read_error(s, "reading environment info", rc);
		return store_fail(s, error_r);
	}
	stat_r->page_size = st.ms_psize;
	stat_r->map_size = info.me_mapsize;
	stat_r->used_pages = (uint64_t)info.me_last_pgno + 1;
	stat_r->file_size = fstat(fd, &fst) == 0 ? (uint64_t)fst.st_size : 0;
	stat_r->map_grows = s->map_grows;

	if (mw_lmdb_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = mw_lmdb_count_free_pages(txn, &stat_r->free_pages);
	if (rc == 0 && (rc = mdb_stat(txn, s->dbi_messages, &st)) == 0) {
		stat_r->msg_records = st.ms_entries;
		if ((rc = mdb_stat(txn, s->dbi_devices, &st)) == 0) {
			stat_r->devices = st.ms_entries;
			if ((rc = mdb_stat(txn, s->dbi_mailboxes, &st)) == 0)
				stat_r->mailboxes = st.ms_entries;
		}
	}
	mw_lmdb_txn_abort(s, txn);
	if (rc != 0) {
		mw_lmdb_read_error(s, "mdb_stat()", rc);
		return store_fail(s, error_r);
	}
	return 0;
}

int mw_lmdb_get_stat(struct mw_store *store, struct mw_store_stat *stat_r,
		     const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_get_stat(s, stat_r, error_r));
}
