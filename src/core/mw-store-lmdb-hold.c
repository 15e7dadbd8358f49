/* mailward core, LMDB state store: the legal hold mark (meta
   "legal_hold" -> u32, the UNIX time the mark was recorded; see
   mw_store_hold_mark_get()). Readers older than the mark look meta keys
   up by name only and never see it. */

#include "mw-store-lmdb.h"

#include <string.h>

#define HOLD_MARK_KEY "legal_hold"

struct hold_mark_ctx {
	bool hold;
	time_t now;
	/* out: found, its time; changed by the write */
	bool found, changed;
	uint32_t since;
};

static int hold_mark_read(struct lmdb_store *s, MDB_txn *txn,
			  struct hold_mark_ctx *ctx)
{
	int rc;

	rc = mw_lmdb_meta_get_u32(s, txn, HOLD_MARK_KEY, &ctx->since);
	ctx->found = rc == 0;
	return rc;
}

static int hold_mark_read_txn(struct lmdb_store *s, MDB_txn *txn, void *ctx)
{
	return hold_mark_read(s, txn, ctx);
}

static int hold_mark_write_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct hold_mark_ctx *ctx = _ctx;
	MDB_val k = { strlen(HOLD_MARK_KEY), (void *)HOLD_MARK_KEY };
	int rc;

	ctx->changed = false;
	/* (another process may have changed it since the caller's read) */
	rc = hold_mark_read(s, txn, ctx);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (ctx->found == ctx->hold)
		return MW_RC_NOCHANGE;
	ctx->changed = true;
	if (!ctx->hold)
		return mdb_del(txn, s->dbi_meta, &k, NULL);
	ctx->since = mw_time_to_u32(ctx->now);
	return mw_lmdb_meta_put_u32(s, txn, HOLD_MARK_KEY, ctx->since);
}

static int store_hold_mark_get(struct lmdb_store *s, time_t *since_r,
			       const char **error_r)
{
	struct hold_mark_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	if (mw_lmdb_read(s, "reading the legal hold mark",
			 hold_mark_read_txn, &ctx, error_r) < 0)
		return -1;
	*since_r = ctx.found ? (time_t)ctx.since : 0;
	return ctx.found ? 1 : 0;
}

int mw_lmdb_hold_mark_get(struct mw_store *store, time_t *since_r,
			  const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	*since_r = 0;
	STORE_GUARDED(s, error_r, store_hold_mark_get(s, since_r, error_r));
}

static int store_hold_mark_set(struct lmdb_store *s, struct hold_mark_ctx *ctx,
			       const char **error_r)
{
	if (mw_lmdb_write(s, ctx->hold ? "recording the legal hold mark" :
			  "clearing the legal hold mark",
			  hold_mark_write_txn, ctx) < 0)
		return store_fail(s, error_r);
	return ctx->changed ? 1 : 0;
}

int mw_lmdb_hold_mark_set(struct mw_store *store, bool hold, time_t now,
			  const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct hold_mark_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.hold = hold;
	ctx.now = now;
	STORE_GUARDED(s, error_r, store_hold_mark_set(s, &ctx, error_r));
}
