/* mailward core, LMDB state store: the record formats and small DB
   helpers (see mw-store-lmdb.h).

   On-disk layout, format 2 (all integers big-endian):

   DB "meta":        "format" -> u32 (2); "next_mailbox_no" -> u32;
                     "legal_hold" -> u32 (set since; mw-store-lmdb-hold.c)
   DB "devices":     id[16] -> dev_no u16, reserved u16, first_seen u64,
                     last_seen u64, sessions u32, retrieved u32, deleted u32,
                     protocol_len u8, label_len u8, protocol, label
   DB "messages":    MDB_DUPSORT|MDB_DUPFIXED
                     dev_no u16 + mailbox_no u32 (6 bytes) ->
                     one 28-byte duplicate per message:
                     msg key[8], retrieved u32, deleted u32, due u32, uid u32,
                     noted u32 (MW_MSG_NOTED_*; format 1 had 24 bytes, no
                     noted: mw_lmdb_upgrade_v1() rewrites them at open)
                     Duplicates sort by their first 8 bytes (memcmp, the key
                     is unique per device+mailbox), so a message is found
                     with MDB_GET_BOTH_RANGE. DUPFIXED stores them packed
                     (no per-record node header), which keeps a record at
                     about 24-35 bytes of file instead of ~40-80 for a plain
                     14-byte key + 16-byte value (node header, page index
                     and 50-70 % page fill).
   DB "mailboxes":   mailbox GUID[16] -> mailbox_no u32
   DB "mailbox_nos": mailbox_no u32 -> mailbox GUID[16]
   DB "summaries":   dev_no u16 + mailbox_no u32 -> uidvalidity u32,
                     highest_uid u32, highestmodseq u64, time u64
   Mailbox names (in "meta"): "mbname:" + name -> mailbox GUID[16], the
                     GUID last seen for the name, so that records follow a
                     mailbox whose GUID was regenerated (lost index). */

#include "mw-store-lmdb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ---- */

void mw_lmdb_msg_dbkey(unsigned char k[MSG_DBKEY_SIZE], uint16_t dev_no,
		       uint32_t mailbox_no)
{
	mw_put_be16(k, dev_no);
	mw_put_be32(k + 2, mailbox_no);
}

void mw_lmdb_dev_rec_set_id(struct mw_device_rec *rec, const unsigned char *id)
{
	memcpy(rec->id, id, MW_DEVICE_ID_SIZE);
	mw_hex_encode(id, MW_DEVICE_ID_SIZE, rec->id_hex);
}

static size_t dev_encode(const struct mw_device_rec *rec,
			 unsigned char buf[DEV_VALUE_MAX])
{
	size_t plen = strlen(rec->protocol), llen = strlen(rec->label);

	mw_put_be16(buf, rec->dev_no);
	mw_put_be16(buf + 2, 0);
	mw_put_be64(buf + 4, mw_time_to_u64(rec->first_seen));
	mw_put_be64(buf + 12, mw_time_to_u64(rec->last_seen));
	mw_put_be32(buf + 20, rec->sessions);
	mw_put_be32(buf + 24, rec->retrieved);
	mw_put_be32(buf + 28, rec->deleted);
	buf[32] = (unsigned char)plen;
	buf[33] = (unsigned char)llen;
	memcpy(buf + DEV_FIXED_SIZE, rec->protocol, plen);
	memcpy(buf + DEV_FIXED_SIZE + plen, rec->label, llen);
	return DEV_FIXED_SIZE + plen + llen;
}

int mw_lmdb_dev_decode(struct lmdb_store *s, const MDB_val *key,
		       const MDB_val *val, struct mw_device_rec *rec)
{
	const unsigned char *p = val->mv_data;
	size_t plen, llen;

	memset(rec, 0, sizeof(*rec));
	if (key->mv_size != MW_DEVICE_ID_SIZE ||
	    val->mv_size < DEV_FIXED_SIZE) {
		mw_lmdb_set_corrupt(s, "corrupt device record (key %zu, value %zu "
				"bytes)", key->mv_size, val->mv_size);
		return MW_RC_FAILED;
	}
	plen = p[32];
	llen = p[33];
	if (plen > MW_PROTOCOL_MAX || llen > MW_LABEL_MAX ||
	    val->mv_size != DEV_FIXED_SIZE + plen + llen ||
	    mw_get_be16(p) == 0) {
		mw_lmdb_set_corrupt(s, "corrupt device record (value %zu bytes)",
				val->mv_size);
		return MW_RC_FAILED;
	}
	mw_lmdb_dev_rec_set_id(rec, key->mv_data);
	rec->dev_no = mw_get_be16(p);
	rec->first_seen = mw_time_from_u64(mw_get_be64(p + 4));
	rec->last_seen = mw_time_from_u64(mw_get_be64(p + 12));
	rec->sessions = mw_get_be32(p + 20);
	rec->retrieved = mw_get_be32(p + 24);
	rec->deleted = mw_get_be32(p + 28);
	/* stored strings were sanitized when written; sanitizing again is
	   a no-op on clean data and keeps a tampered file harmless */
	{
		char tmp[MW_LABEL_MAX + 1];

		memcpy(tmp, p + DEV_FIXED_SIZE, plen);
		tmp[plen] = '\0';
		(void)mw_sanitize(tmp, rec->protocol, sizeof(rec->protocol));
		memcpy(tmp, p + DEV_FIXED_SIZE + plen, llen);
		tmp[llen] = '\0';
		(void)mw_sanitize(tmp, rec->label, sizeof(rec->label));
	}
	return 0;
}

void mw_lmdb_msg_decode(const unsigned char *k, const unsigned char *d,
			struct mw_msg_rec *rec)
{
	memset(rec, 0, sizeof(*rec));
	mw_lmdb_msg_decode_fields(k, d, rec);
}

void mw_lmdb_msg_decode_fields(const unsigned char *k, const unsigned char *d,
			       struct mw_msg_rec *rec)
{
	rec->dev_no = mw_get_be16(k);
	rec->mailbox_no = mw_get_be32(k + 2);
	memcpy(rec->key, d, MW_MSG_KEY_SIZE);
	rec->retrieved = (time_t)mw_get_be32(d + 8);
	rec->deleted = (time_t)mw_get_be32(d + 12);
	rec->expunge_due = (time_t)mw_get_be32(d + 16);
	rec->uid = mw_get_be32(d + 20);
	rec->noted = mw_get_be32(d + 24);
}

/* ---- small DB helpers (return 0, MDB_NOTFOUND, error code) ---- */

int mw_lmdb_mailbox_lookup(struct lmdb_store *s, MDB_txn *txn,
			   const unsigned char guid[MW_STORE_GUID_SIZE],
			   uint32_t *no_r)
{
	MDB_val k = { MW_STORE_GUID_SIZE, (void *)guid }, v;
	int rc;

	rc = mdb_get(txn, s->dbi_mailboxes, &k, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size != 4 || mw_get_be32(v.mv_data) == 0) {
		mw_lmdb_set_corrupt(s, "corrupt mailbox record (%zu bytes)",
				v.mv_size);
		return MW_RC_FAILED;
	}
	*no_r = mw_get_be32(v.mv_data);
	return 0;
}

int mw_lmdb_meta_get_u32(struct lmdb_store *s, MDB_txn *txn, const char *name,
			 uint32_t *value_r)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc;

	rc = mdb_get(txn, s->dbi_meta, &k, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size != 4) {
		mw_lmdb_set_corrupt(s, "corrupt meta record %s (%zu bytes)",
				name, v.mv_size);
		return MW_RC_FAILED;
	}
	*value_r = mw_get_be32(v.mv_data);
	return 0;
}

int mw_lmdb_meta_put_u32(struct lmdb_store *s, MDB_txn *txn, const char *name,
			 uint32_t value)
{
	unsigned char buf[4];
	MDB_val k = { strlen(name), (void *)name }, v = { 4, buf };

	mw_put_be32(buf, value);
	return mdb_put(txn, s->dbi_meta, &k, &v, 0);
}

int mw_lmdb_mailbox_lookup_or_create(struct lmdb_store *s, MDB_txn *txn,
				    const unsigned char guid[MW_STORE_GUID_SIZE],
				     uint32_t *no_r)
{
	unsigned char nobuf[4];
	MDB_val k = { MW_STORE_GUID_SIZE, (void *)guid }, v = { 4, nobuf };
	MDB_val k2 = { 4, nobuf }, v2 = { MW_STORE_GUID_SIZE, (void *)guid };
	uint32_t next;
	int rc;

	rc = mw_lmdb_mailbox_lookup(s, txn, guid, no_r);
	if (rc != MDB_NOTFOUND)
		return rc;
	rc = mw_lmdb_meta_get_u32(s, txn, "next_mailbox_no", &next);
	if (rc == MDB_NOTFOUND)
		next = 1;
	else if (rc != 0)
		return rc;
	if (next == 0 || next == UINT32_MAX) {
		store_set_error(s, "mailbox numbers exhausted");
		return MW_RC_FAILED;
	}
	mw_put_be32(nobuf, next);
	if ((rc = mdb_put(txn, s->dbi_mailboxes, &k, &v, 0)) != 0 ||
	    (rc = mdb_put(txn, s->dbi_mailbox_nos, &k2, &v2, 0)) != 0 ||
	    (rc = mw_lmdb_meta_put_u32(s, txn, "next_mailbox_no", next + 1)) != 0)
		return rc;
	*no_r = next;
	return 0;
}

/* Deletes every record with the 2-byte dev_no prefix from dbi. */
int mw_lmdb_delete_dev_prefix(MDB_txn *txn, MDB_dbi dbi, uint16_t dev_no,
			      unsigned int del_flags)
{
	unsigned char kb[MSG_DBKEY_SIZE];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	for (;;) {
		mw_lmdb_msg_dbkey(kb, dev_no, 0);
		k.mv_size = sizeof(kb);
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		if (k.mv_size < 2 || mw_get_be16(k.mv_data) != dev_no)
			break;
		rc = mdb_cursor_del(cur, del_flags);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

int mw_lmdb_device_delete_all(struct lmdb_store *s, MDB_txn *txn,
			      const struct mw_device_rec *rec)
{
	MDB_val k = { MW_DEVICE_ID_SIZE, (void *)rec->id };
	int rc;

	rc = mdb_del(txn, s->dbi_devices, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	rc = mw_lmdb_delete_dev_prefix(txn, s->dbi_messages, rec->dev_no,
			       MDB_NODUPDATA);
	if (rc != 0)
		return rc;
	return mw_lmdb_delete_dev_prefix(txn, s->dbi_summaries, rec->dev_no, 0);
}

void *mw_lmdb_array_room(void *arr, unsigned int *alloc, unsigned int count,
			 size_t elem_size)
{
	unsigned int new_alloc;
	void *tmp;

	if (count < *alloc)
		return arr;
	new_alloc = *alloc == 0 ? 16 : *alloc * 2;
	if (new_alloc <= *alloc)
		return NULL;
	tmp = realloc(arr, (size_t)new_alloc * elem_size);
	if (tmp != NULL)
		*alloc = new_alloc;
	return tmp;
}

/* Reads all devices (dev_no order is not guaranteed: id order). *recs_r
   is malloc()ed (may be NULL when count is 0). */
int mw_lmdb_devices_load(struct lmdb_store *s, MDB_txn *txn,
			 struct mw_device_rec **recs_r, unsigned int *count_r)
{
	struct mw_device_rec *recs = NULL, *tmp;
	unsigned int count = 0, alloc = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*recs_r = NULL;
	*count_r = 0;
	rc = mdb_cursor_open(txn, s->dbi_devices, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		tmp = mw_lmdb_array_room(recs, &alloc, count, sizeof(*recs));
		if (tmp == NULL) {
			rc = ENOMEM;
			break;
		}
		recs = tmp;
		rc = mw_lmdb_dev_decode(s, &k, &v, &recs[count]);
		if (rc != 0)
			break;
		count++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		free(recs);
		return rc;
	}
	*recs_r = recs;
	*count_r = count;
	return 0;
}

int mw_lmdb_device_get_txn(struct lmdb_store *s, MDB_txn *txn,
			   const unsigned char id[MW_DEVICE_ID_SIZE],
			   struct mw_device_rec *rec_r)
{
	MDB_val k = { MW_DEVICE_ID_SIZE, (void *)id }, v;
	int rc;

	rc = mdb_get(txn, s->dbi_devices, &k, &v);
	if (rc != 0)
		return rc;
	return mw_lmdb_dev_decode(s, &k, &v, rec_r);
}

int mw_lmdb_device_put(struct lmdb_store *s, MDB_txn *txn,
		       const struct mw_device_rec *rec)
{
	unsigned char buf[DEV_VALUE_MAX];
	MDB_val k = { MW_DEVICE_ID_SIZE, (void *)rec->id }, v;

	v.mv_data = buf;
	v.mv_size = dev_encode(rec, buf);
	return mdb_put(txn, s->dbi_devices, &k, &v, 0);
}

int mw_lmdb_mailbox_guid_of(struct lmdb_store *s, MDB_txn *txn,
			    uint32_t mailbox_no,
			    char guid_hex[MW_MAILBOX_GUID_HEX_SIZE])
{
	unsigned char nobuf[4];
	MDB_val k = { 4, nobuf }, v;
	int rc;

	mw_put_be32(nobuf, mailbox_no);
	rc = mdb_get(txn, s->dbi_mailbox_nos, &k, &v);
	if (rc == MDB_NOTFOUND) {
		mw_lmdb_set_corrupt(s, "corrupt store: mailbox number %u has no "
				"GUID", mailbox_no);
		return MW_RC_FAILED;
	}
	if (rc != 0)
		return rc;
	if (v.mv_size != MW_STORE_GUID_SIZE) {
		mw_lmdb_set_corrupt(s, "corrupt mailbox number record (%zu bytes)",
				v.mv_size);
		return MW_RC_FAILED;
	}
	mw_hex_encode(v.mv_data, MW_STORE_GUID_SIZE, guid_hex);
	return 0;
}

/* Upgrades the duplicates of the key cur is on: reads them, deletes them
   and puts them back as format 2 records. Leaves cur on the key. */
static int upgrade_v1_key(struct lmdb_store *s, MDB_cursor *cur,
			  unsigned char kb[MSG_DBKEY_SIZE])
{
	MDB_val k, d;
	unsigned char *old = NULL, *tmp, nd[MSG_DATA_SIZE];
	size_t n = 0, alloc = 0, i;
	int rc;

	do {
		rc = mdb_cursor_get(cur, &k, &d, MDB_GET_CURRENT);
		if (rc != 0)
			break;
		if (k.mv_size != MSG_DBKEY_SIZE) {
			mw_lmdb_set_corrupt(s, "corrupt message key (%zu bytes)",
					    k.mv_size);
			rc = MW_RC_FAILED;
			break;
		}
		memcpy(kb, k.mv_data, MSG_DBKEY_SIZE);
		if (d.mv_size == MSG_DATA_SIZE) {
			/* (a key a partly done upgrade never leaves: the
			   transaction is all or nothing) */
			continue;
		}
		if (d.mv_size != MSG_DATA_SIZE_V1) {
			mw_lmdb_set_corrupt(s, "corrupt message record (%zu "
					    "bytes)", d.mv_size);
			rc = MW_RC_FAILED;
			break;
		}
		if (n == alloc) {
			alloc = alloc == 0 ? 64 : alloc * 2;
			tmp = realloc(old, alloc * MSG_DATA_SIZE_V1);
			if (tmp == NULL) {
				store_set_error(s, "out of memory");
				rc = MW_RC_FAILED;
				break;
			}
			old = tmp;
		}
		memcpy(old + n++ * MSG_DATA_SIZE_V1, d.mv_data,
		       MSG_DATA_SIZE_V1);
	} while ((rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT_DUP)) == 0);
	if (rc == MDB_NOTFOUND && n > 0)
		rc = mdb_cursor_del(cur, MDB_NODUPDATA);
	else if (rc == MDB_NOTFOUND)
		rc = 0;
	for (i = 0; rc == 0 && i < n; i++) {
		k.mv_size = MSG_DBKEY_SIZE;
		k.mv_data = kb;
		d.mv_size = sizeof(nd);
		d.mv_data = nd;
		memcpy(nd, old + i * MSG_DATA_SIZE_V1, MSG_DATA_SIZE_V1);
		mw_put_be32(nd + MSG_DATA_SIZE_V1, 0);
		rc = mdb_cursor_put(cur, &k, &d, 0);
	}
	free(old);
	return rc;
}

int mw_lmdb_upgrade_v1(struct lmdb_store *s, MDB_txn *txn)
{
	unsigned char kb[MSG_DBKEY_SIZE];
	MDB_cursor *cur;
	MDB_val k, d;
	int rc;

	rc = mdb_cursor_open(txn, s->dbi_messages, &cur);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
	while (rc == 0) {
		rc = upgrade_v1_key(s, cur, kb);
		if (rc != 0)
			break;
		/* on to the next key (cur may sit on any duplicate) */
		k.mv_size = MSG_DBKEY_SIZE;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &d, MDB_SET_KEY);
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT_NODUP);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Positions cur at the record of key in (dev_no, mailbox_no).
   Returns 0 (data_r set), MDB_NOTFOUND or an error. */
int mw_lmdb_msg_find(struct lmdb_store *s, MDB_cursor *cur, uint16_t dev_no,
		     uint32_t mailbox_no,
		     const unsigned char key[MW_MSG_KEY_SIZE],
		     const unsigned char **data_r)
{
	unsigned char kb[MSG_DBKEY_SIZE], db[MSG_DATA_SIZE];
	MDB_val k = { sizeof(kb), kb }, d = { sizeof(db), db };
	int rc;

	mw_lmdb_msg_dbkey(kb, dev_no, mailbox_no);
	memset(db, 0, sizeof(db));
	memcpy(db, key, MW_MSG_KEY_SIZE);
	rc = mdb_cursor_get(cur, &k, &d, MDB_GET_BOTH_RANGE);
	if (rc != 0)
		return rc;
	if (d.mv_size != MSG_DATA_SIZE) {
		mw_lmdb_set_corrupt(s, "corrupt message record (%zu bytes)",
				d.mv_size);
		return MW_RC_FAILED;
	}
	if (memcmp(d.mv_data, key, MW_MSG_KEY_SIZE) != 0)
		return MDB_NOTFOUND;
	*data_r = d.mv_data;
	return 0;
}


int mw_lmdb_owners_load(struct lmdb_store *s, MDB_txn *txn,
			struct mw_lmdb_owners *o)
{
	return mw_lmdb_devices_load(s, txn, &o->recs, &o->count);
}

void mw_lmdb_owner_fill(const struct mw_lmdb_owners *o,
			struct mw_msg_rec *rec)
{
	unsigned int i;

	for (i = 0; i < o->count; i++) {
		if (o->recs[i].dev_no == rec->dev_no) {
			memcpy(rec->dev_id, o->recs[i].id, MW_DEVICE_ID_SIZE);
			return;
		}
	}
	memset(rec->dev_id, 0, MW_DEVICE_ID_SIZE);
}

void mw_lmdb_owners_free(struct mw_lmdb_owners *o)
{
	free(o->recs);
	o->recs = NULL;
	o->count = 0;
}
