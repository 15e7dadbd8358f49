/* mailward core, LMDB state store: devices. */

#include "mw-store-lmdb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct device_get_ctx {
	const unsigned char *id;
	struct mw_device_rec *rec;
};

static int device_get_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct device_get_ctx *ctx = _ctx;

	return mw_lmdb_device_get_txn(s, txn, ctx->id, ctx->rec);
}

int mw_lmdb_device_get(struct mw_store *store,
		       const unsigned char id[MW_DEVICE_ID_SIZE],
		       struct mw_device_rec *rec_r, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct device_get_ctx ctx = { id, rec_r };

	return mw_lmdb_read_guarded(s, "reading device", device_get_txn,
				    &ctx, error_r);
}

struct dev_event {
	enum mw_device_event event;
	struct mw_device_rec rec;
};

struct dev_events {
	struct dev_event *events;
	unsigned int count, alloc;
};

static int dev_events_add(struct dev_events *ev, enum mw_device_event event,
			  const struct mw_device_rec *rec)
{
	struct dev_event *tmp;

	tmp = mw_lmdb_array_room(ev->events, &ev->alloc, ev->count,
				 sizeof(*ev->events));
	if (tmp == NULL)
		return ENOMEM;
	ev->events = tmp;
	ev->events[ev->count].event = event;
	ev->events[ev->count].rec = *rec;
	ev->count++;
	return 0;
}

static void dev_events_emit(struct dev_events *ev, mw_device_event_cb *cb,
			    void *ctx)
{
	sigjmp_buf *saved;
	unsigned int i;

	GUARD_SUSPEND(saved);
	if (cb != NULL) {
		for (i = 0; i < ev->count; i++)
			cb(ev->events[i].event, &ev->events[i].rec, ctx);
	}
	GUARD_RESUME(saved);
	free(ev->events);
	memset(ev, 0, sizeof(*ev));
}

/* Removes the device of rec with its records, reports it in ev and flags
   it removed (dev_no = 0). */
static int device_remove(struct lmdb_store *s, MDB_txn *txn,
			 struct mw_device_rec *rec, enum mw_device_event event,
			 struct dev_events *ev)
{
	int rc;

	if ((rc = mw_lmdb_device_delete_all(s, txn, rec)) != 0 ||
	    (rc = dev_events_add(ev, event, rec)) != 0)
		return rc;
	rec->dev_no = 0;
	return 0;
}

/* TRUE if rec may not be evicted under limits (NULL: any may be) */
static bool device_protected(const struct mw_device_limits *limits,
			     const struct mw_device_rec *rec, time_t now)
{
	sigjmp_buf *saved;
	bool ret;

	if (limits == NULL)
		return false;
	if (limits->protect_secs > 0 &&
	    (rec->last_seen >= now || now - rec->last_seen < limits->protect_secs))
		return true;
	if (limits->protected_cb == NULL)
		return false;
	GUARD_SUSPEND(saved);
	ret = limits->protected_cb(rec, limits->protected_ctx);
	GUARD_RESUME(saved);
	return ret;
}

/* Expires idle devices, then evicts least recently seen ones that are not
   protected (limits) while max_devices or more remain. Removed entries
   are flagged by dev_no = 0 in recs (after being reported in ev).
   *full_r: max_devices or more remain, none evictable. */
static int devices_expire_evict(struct lmdb_store *s, MDB_txn *txn,
				struct mw_device_rec *recs,
				unsigned int count, time_t now,
				time_t expire_secs, unsigned int max_devices,
				const struct mw_device_limits *limits,
				struct dev_events *ev, bool *full_r)
{
	unsigned int i, remaining = count, victim, evictable = 0;
	int rc;

	*full_r = false;
	for (i = 0; i < count && expire_secs > 0; i++) {
		if (recs[i].last_seen >= now ||
		    now - recs[i].last_seen <= expire_secs)
			continue;
		rc = device_remove(s, txn, &recs[i], MW_DEVICE_EVENT_EXPIRED,
				   ev);
		if (rc != 0)
			return rc;
		remaining--;
	}
	if (max_devices == 0 || remaining < max_devices)
		return 0;
	for (i = 0; i < count; i++) {
		if (recs[i].dev_no != 0 &&
		    !device_protected(limits, &recs[i], now))
			evictable++;
	}

	if (remaining - evictable >= max_devices) {
		/* no room without evicting a protected device */
		*full_r = true;
		return 0;
	}
	while (remaining >= max_devices) {
		victim = count;
		for (i = 0; i < count; i++) {
			if (recs[i].dev_no == 0 ||
			    device_protected(limits, &recs[i], now))
				continue;

			if (victim == count ||
			    recs[i].last_seen < recs[victim].last_seen ||
			    (recs[i].last_seen == recs[victim].last_seen &&
			     recs[i].dev_no < recs[victim].dev_no))
				victim = i;
		}
		if (victim == count) {
			/* every device left is protected */
			*full_r = true;
			return 0;
		}
		rc = device_remove(s, txn, &recs[victim],
				   MW_DEVICE_EVENT_EVICTED, ev);
		if (rc != 0)
			return rc;
		remaining--;
	}
	return 0;
}

/* Hands out device numbers in increasing order from meta "next_dev_no"
   (wrapping after MW_STORE_MAX_DEV_NO, skipping numbers in use): a removed
   device's number is not given to the next device, so a session that
   still holds it cannot be mistaken for the new one (mw_batch_bind_device
   checks the device id as well, for the wrap). A store without the
   counter (older versions) starts after max_used, the highest number seen
   in this transaction. Leftover records under the chosen number are
   removed, so a new device always starts empty. */
static int dev_no_allocate(struct lmdb_store *s, MDB_txn *txn,
			   const unsigned char *used, unsigned int max_used,
			   unsigned int *dev_no_r)
{
	uint32_t next;
	unsigned int i, dev_no;
	int rc;

	rc = mw_lmdb_meta_get_u32(s, txn, "next_dev_no", &next);
	if (rc == MDB_NOTFOUND)
		next = max_used + 1;
	else if (rc != 0)
		return rc;
	if (next == 0 || next > MW_STORE_MAX_DEV_NO)
		next = 1;
	for (i = 0, dev_no = next; i < MW_STORE_MAX_DEV_NO; i++) {
		if ((used[dev_no / 8] & (1 << (dev_no % 8))) == 0)
			break;
		dev_no = dev_no == MW_STORE_MAX_DEV_NO ? 1 : dev_no + 1;
	}
	if (i == MW_STORE_MAX_DEV_NO) {
		store_set_error(s, "too many devices");
		return MW_RC_FAILED;
	}
	if ((rc = mw_lmdb_delete_dev_prefix(txn, s->dbi_messages, (uint16_t)dev_no,
				    MDB_NODUPDATA)) != 0 ||
	    (rc = mw_lmdb_delete_dev_prefix(txn, s->dbi_summaries, (uint16_t)dev_no,
				    0)) != 0 ||
	    (rc = mw_lmdb_meta_put_u32(s, txn, "next_dev_no",
			       dev_no == MW_STORE_MAX_DEV_NO ? 1 : dev_no + 1)) != 0)
		return rc;
	*dev_no_r = dev_no;
	return 0;
}

/* Stores without "next_dev_no" (older versions) get it before a device is
   removed, so the removed number is not handed out next. */
static int dev_no_counter_ensure(struct lmdb_store *s, MDB_txn *txn,
				 const struct mw_device_rec *recs,
				 unsigned int count)
{
	unsigned int i, max_used = 0;
	uint32_t next;
	int rc;

	rc = mw_lmdb_meta_get_u32(s, txn, "next_dev_no", &next);
	if (rc != MDB_NOTFOUND)
		return rc;
	for (i = 0; i < count; i++) {
		if (recs[i].dev_no > max_used)
			max_used = recs[i].dev_no;
	}
	return mw_lmdb_meta_put_u32(s, txn, "next_dev_no",
			    max_used >= MW_STORE_MAX_DEV_NO ? 1 : max_used + 1);
}

/* Loads the devices before some are removed (expire, forget), making
   sure the store has its device number counter first. */
static int devices_load_to_remove(struct lmdb_store *s, MDB_txn *txn,
				  struct mw_device_rec **recs_r,
				  unsigned int *count_r)
{
	int rc;

	rc = mw_lmdb_devices_load(s, txn, recs_r, count_r);
	if (rc == 0)
		rc = dev_no_counter_ensure(s, txn, *recs_r, *count_r);
	if (rc != 0) {
		free(*recs_r);
		*recs_r = NULL;
	}
	return rc;
}

struct register_ctx {
	unsigned char id[MW_DEVICE_ID_SIZE];
	const char *label, *protocol;
	time_t now;
	const struct mw_device_limits *limits;
	struct dev_events ev;
	struct mw_device_rec rec;
	bool created;
	/* 0 or MW_DEVICE_REFUSED_* */
	int refused;
};

/* the device of ctx with its id, label and protocol, times now */
static void register_rec_init(struct register_ctx *ctx, unsigned int dev_no)
{
	memset(&ctx->rec, 0, sizeof(ctx->rec));
	mw_lmdb_dev_rec_set_id(&ctx->rec, ctx->id);
	ctx->rec.dev_no = (uint16_t)dev_no;
	ctx->rec.first_seen = ctx->rec.last_seen = ctx->now;
	(void)mw_sanitize(ctx->label, ctx->rec.label, sizeof(ctx->rec.label));
	(void)mw_sanitize(ctx->protocol, ctx->rec.protocol,
			  sizeof(ctx->rec.protocol));
}

/* The new devices of today (UTC) so far, from meta "new_dev_day" and
   "new_dev_count": 0 when another day is recorded. */
static int new_devices_today(struct lmdb_store *s, MDB_txn *txn, time_t now,
			     uint32_t *count_r)
{
	uint32_t day;
	int rc;

	*count_r = 0;
	rc = mw_lmdb_meta_get_u32(s, txn, "new_dev_day", &day);
	if (rc == MDB_NOTFOUND || (rc == 0 && day != (uint32_t)(now / 86400)))
		return 0;
	if (rc != 0)
		return rc;
	rc = mw_lmdb_meta_get_u32(s, txn, "new_dev_count", count_r);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int new_devices_count(struct lmdb_store *s, MDB_txn *txn, time_t now,
			     uint32_t today)
{
	int rc;

	rc = mw_lmdb_meta_put_u32(s, txn, "new_dev_day", (uint32_t)(now / 86400));
	if (rc == 0) {
		rc = mw_lmdb_meta_put_u32(s, txn, "new_dev_count",
					  today == UINT32_MAX ? today : today + 1);
	}
	return rc;
}

/* makes room for the device of ctx (or finds there is none: refused) and
   hands out its number */
static int device_make_room(struct lmdb_store *s, MDB_txn *txn,
			    struct register_ctx *ctx, unsigned int *dev_no_r)
{
	const struct mw_device_limits *limits = ctx->limits;
	struct mw_device_rec *recs;
	unsigned char used[(MW_STORE_MAX_DEV_NO + 1) / 8];
	unsigned int count, i, max_used = 0;
	bool full;
	int rc;

	rc = devices_load_to_remove(s, txn, &recs, &count);
	if (rc != 0)
		return rc;
	for (i = 0; i < count; i++) {
		if (recs[i].dev_no > max_used)
			max_used = recs[i].dev_no;
	}
	rc = devices_expire_evict(s, txn, recs, count, ctx->now,
				  limits->expire_secs, limits->max_devices,
				  limits, &ctx->ev, &full);
	memset(used, 0, sizeof(used));
	for (i = 0; i < count; i++) {
		if (recs[i].dev_no != 0)
			used[recs[i].dev_no / 8] |= 1 << (recs[i].dev_no % 8);
	}
	free(recs);
	if (rc != 0)
		return rc;
	if (full) {
		ctx->refused = MW_DEVICE_REFUSED_FULL;
		/* the expiries stay; nothing else is written */
		return ctx->ev.count > 0 ? 0 : MW_RC_NOCHANGE;
	}
	return dev_no_allocate(s, txn, used, max_used, dev_no_r);
}

static int device_register_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct register_ctx *ctx = _ctx;
	unsigned int dev_no;
	uint32_t today;
	int rc;

	ctx->ev.count = 0;
	ctx->created = false;
	ctx->refused = 0;
	rc = mw_lmdb_device_get_txn(s, txn, ctx->id, &ctx->rec);
	if (rc == 0) {
		/* known device (maybe created by a concurrent session) */
		if (ctx->now > ctx->rec.last_seen)
			ctx->rec.last_seen = ctx->now;
		(void)mw_sanitize(ctx->label, ctx->rec.label,
				  sizeof(ctx->rec.label));
		(void)mw_sanitize(ctx->protocol, ctx->rec.protocol,
				  sizeof(ctx->rec.protocol));
		return mw_lmdb_device_put(s, txn, &ctx->rec);
	}
	if (rc != MDB_NOTFOUND)
		return rc;

	if ((rc = new_devices_today(s, txn, ctx->now, &today)) != 0)
		return rc;
	if (ctx->limits->new_per_day > 0 &&
	    today >= ctx->limits->new_per_day) {
		ctx->refused = MW_DEVICE_REFUSED_RATE;
		return MW_RC_NOCHANGE;
	}
	rc = device_make_room(s, txn, ctx, &dev_no);
	if (rc != 0 || ctx->refused != 0)
		return rc;
	register_rec_init(ctx, dev_no);
	if ((rc = mw_lmdb_device_put(s, txn, &ctx->rec)) != 0 ||
	    (rc = new_devices_count(s, txn, ctx->now, today)) != 0 ||
	    (rc = dev_events_add(&ctx->ev, MW_DEVICE_EVENT_REGISTERED,
				 &ctx->rec)) != 0)
		return rc;
	ctx->created = true;
	return 0;
}

static int store_device_register(struct lmdb_store *s,
				 struct register_ctx *ctx,
				 mw_device_event_cb *cb, void *cb_ctx,
				 struct mw_device_rec *rec_r,
				 const char **error_r)
{
	struct device_get_ctx get = { ctx->id, &ctx->rec };
	int ret;

	/* read-only fast path for devices seen recently */
	ret = mw_lmdb_read(s, "reading device", device_get_txn, &get, error_r);
	if (ret < 0)
		return -1;
	if (ret > 0 && (ctx->now < ctx->rec.last_seen ||
			ctx->now - ctx->rec.last_seen < MW_DEVICE_TOUCH_SECS)) {
		if (rec_r != NULL)
			*rec_r = ctx->rec;
		return 0;
	}

	if (mw_lmdb_write(s, "registering device", device_register_txn,
			  ctx) < 0) {
		free(ctx->ev.events);
		return store_fail(s, error_r);
	}
	if (ctx->refused != 0)
		register_rec_init(ctx, 0);
	if (rec_r != NULL)
		*rec_r = ctx->rec;
	dev_events_emit(&ctx->ev, cb, cb_ctx);
	if (ctx->refused != 0)
		return ctx->refused;
	return ctx->created ? 1 : 0;
}

int mw_lmdb_device_register(struct mw_store *store,
			    const unsigned char id[MW_DEVICE_ID_SIZE],
			    const char *label, const char *protocol,
			    time_t now, const struct mw_device_limits *limits,
			    mw_device_event_cb *cb, void *cb_ctx,
			    struct mw_device_rec *rec_r, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct register_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	memcpy(ctx.id, id, MW_DEVICE_ID_SIZE);
	ctx.label = label;
	ctx.protocol = protocol;
	ctx.now = now;
	ctx.limits = limits;
	STORE_GUARDED(s, error_r, store_device_register(s, &ctx, cb, cb_ctx,
							rec_r, error_r));
}

struct expire_ctx {
	time_t now, expire_secs;
	struct dev_events ev;
};

static int device_expire_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct expire_ctx *ctx = _ctx;
	struct mw_device_rec *recs;
	unsigned int count;
	bool full;
	int rc;

	ctx->ev.count = 0;
	if ((rc = devices_load_to_remove(s, txn, &recs, &count)) != 0)
		return rc;
	rc = devices_expire_evict(s, txn, recs, count, ctx->now,
				  ctx->expire_secs, 0, NULL, &ctx->ev, &full);
	free(recs);
	return rc;
}

static int store_device_expire(struct lmdb_store *s, time_t now,
			       time_t expire_secs, mw_device_event_cb *cb,
			       void *cb_ctx, const char **error_r)
{
	struct expire_ctx ctx;
	int count;

	memset(&ctx, 0, sizeof(ctx));
	ctx.now = now;
	ctx.expire_secs = expire_secs;
	if (expire_secs <= 0)
		return 0;
	if (mw_lmdb_write(s, "expiring devices", device_expire_txn, &ctx) < 0) {
		free(ctx.ev.events);
		return store_fail(s, error_r);
	}
	count = (int)ctx.ev.count;
	dev_events_emit(&ctx.ev, cb, cb_ctx);
	return count;
}

int mw_lmdb_device_expire(struct mw_store *store, time_t now,
			  time_t expire_secs, mw_device_event_cb *cb,
			  void *cb_ctx, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_device_expire(s, now, expire_secs, cb,
						      cb_ctx, error_r));
}

static int dev_rec_cmp(const void *a, const void *b)
{
	const struct mw_device_rec *ra = a, *rb = b;

	return (int)ra->dev_no - (int)rb->dev_no;
}

static int store_device_iter(struct lmdb_store *s,
			 int (*cb)(const struct mw_device_rec *rec, void *ctx),
			     void *ctx, const char **error_r)
{
	struct mw_device_rec *recs;
	unsigned int count, i;
	sigjmp_buf *saved;
	MDB_txn *txn;
	int rc, ret = 0;

	if (mw_lmdb_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = mw_lmdb_devices_load(s, txn, &recs, &count);
	mw_lmdb_txn_abort(s, txn);
	if (rc != 0) {
		mw_lmdb_read_error(s, "reading devices", rc);
		return store_fail(s, error_r);
	}
	if (count > 0)
		qsort(recs, count, sizeof(*recs), dev_rec_cmp);
	GUARD_SUSPEND(saved);
	for (i = 0; i < count; i++) {
		if (cb(&recs[i], ctx) != 0) {
			ret = 1;
			break;
		}
	}
	GUARD_RESUME(saved);
	free(recs);
	return ret;
}

int mw_lmdb_device_iter(struct mw_store *store,
			int (*cb)(const struct mw_device_rec *rec, void *ctx),
			void *ctx, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_device_iter(s, cb, ctx, error_r));
}

struct forget_ctx {
	const char *prefix;
	size_t prefix_len;
	struct mw_device_rec rec;
	bool found;
};

static int device_forget_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct forget_ctx *ctx = _ctx;
	struct mw_device_rec *recs;
	unsigned int count, i, match = 0;
	int rc;

	ctx->found = false;
	if ((rc = devices_load_to_remove(s, txn, &recs, &count)) != 0)
		return rc;
	for (i = 0; i < count; i++) {
		if (strncmp(recs[i].id_hex, ctx->prefix,
			    ctx->prefix_len) != 0)
			continue;
		if (match++ == 0)
			ctx->rec = recs[i];
	}
	free(recs);
	if (match == 0)
		return 0;
	if (match > 1) {
		store_set_error(s, "device id prefix %s is ambiguous "
				"(%u devices)", ctx->prefix, match);
		return MW_RC_FAILED;
	}
	ctx->found = true;
	return mw_lmdb_device_delete_all(s, txn, &ctx->rec);
}

static int store_device_forget(struct lmdb_store *s, const char *prefix,
			       struct mw_device_rec *rec_r,
			       const char **error_r)
{
	struct forget_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.prefix = prefix;
	ctx.prefix_len = strlen(prefix);
	if (mw_lmdb_write(s, "forgetting device", device_forget_txn, &ctx) < 0)
		return store_fail(s, error_r);
	if (ctx.found && rec_r != NULL)
		*rec_r = ctx.rec;
	return ctx.found ? 1 : 0;
}

int mw_lmdb_device_forget(struct mw_store *store, const char *prefix,
			  struct mw_device_rec *rec_r, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_device_forget(s, prefix, rec_r,
						      error_r));
}
/* ---- message reads ---- */

