#ifndef MW_STORE_H
#define MW_STORE_H

/* Per-user device state (one directory per user). Dovecot-free,
   single-threaded, never prints. This API is backend-neutral (no LMDB
   type): its one backend keeps the state in an LMDB environment in the
   directory (mw-store-lmdb*.c behind struct mw_store_backend,
   mw-store-private.h); what follows about LMDB is that backend's.

   Conventions:
   - int functions return -1 on error with *error_r set to a message that
     names the store path; the string lives in the store (or, for open, in
     a static buffer) and is valid until the next call on that store (next
     mw_store_open call). Read functions return 1 found / 0 not found.
   - LMDB's recoverable conditions are handled inside; the caller never
     sees them: MDB_MAP_FULL (the map grows and the write is redone),
     MDB_MAP_RESIZED (another process's size is adopted) and the reader
     slots of dead processes, also when they fill the reader table
     (mdb_reader_check() at every open, before the handle's first
     transaction takes its slot; see also mw_store_reader_check()). A
     reader table full of live readers (MDB_READERS_FULL) is an error
     like any other.
   - Corrupt data (wrong-sized values, invalid meta pages, zeroed pages,
     a data file shorter than its pages, random bytes in B-tree pages that
     make LMDB fault) are errors, never crashes: the damaged file is moved
     aside and the store starts afresh (see mw_store_get_reset()). LMDB has
     no page checksums, so damage it does not trip over is read as data;
     the record decoders bound what it can do. An unknown format version
     is an error and is left in place (a newer mailward's store).
     While a handle exists, SIGSEGV and SIGBUS handlers are installed; a
     fault outside a store call is passed on to the previous disposition.
   - Callbacks run outside any transaction unless documented otherwise; a
     callback documented as "inside the read transaction" must not call
     any mw_store or mw_batch function (they would fail with "nested").
   - After fork(), a child must not use handles inherited from its parent;
     mw_store_open() in the child opens its own handle.
   - The process running this must be the mail user: the directory is
     created 0700 and the files 0600 (subject to umask) with the effective
     uid; nothing here changes owners. Never on NFS (LMDB locking). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mw-device.h"

/* 2: message records carry the suppression mark (noted); a format 1 store
   is upgraded in place at open (its records read as not noted) */
#define MW_STORE_FORMAT 2
#define MW_STORE_DEFAULT_MAPSIZE (64ULL * 1024 * 1024)
#define MW_STORE_MAX_MAPSIZE (16ULL * 1024 * 1024 * 1024)
#define MW_PROTOCOL_MAX 15
#define MW_MAILBOX_GUID_HEX_SIZE 33
#define MW_MSG_KEY_SIZE 8
/* Granularity of last_seen and of IMAP summary times. Known devices are
   only rewritten at registration if last_seen is older than this, so
   session starts of known devices are read-only; a session end that
   changes nothing else rewrites a device (or a summary) only if its time
   moves by this much, so repeated sessions that change nothing write
   nothing (issue 14). last_seen may therefore lag the last session by
   less than this: device expiry (days) and eviction order do not need a
   finer resolution; a check of "the last session" (the POP3 login delay)
   does: its batches set mw_batch_set_touch_secs(0). */
#define MW_DEVICE_TOUCH_SECS 60

struct mw_store;
struct mw_batch;

struct mw_device_rec {
	unsigned char id[MW_DEVICE_ID_SIZE];
	char id_hex[MW_DEVICE_ID_HEX_SIZE];
	uint16_t dev_no;	/* >= 1, unique while the device exists; not
				   given to another device until 65535 more
				   have been registered */
	char protocol[MW_PROTOCOL_MAX + 1];
	char label[MW_LABEL_MAX + 1];
	time_t first_seen, last_seen;
	uint32_t sessions, retrieved, deleted;	/* saturating counters */
};

/* A per-device per-message record. Times are unix seconds, 0 = unset. */
struct mw_msg_rec {
	uint16_t dev_no;
	/* filled by reads: the id of the device that holds dev_no in the
	   read's transaction (all zero: none). Device numbers are 16 bits
	   and are handed out again after 65535 registrations: a caller
	   that holds a number from another transaction (its session's
	   device, a device list) compares this id with the device it
	   means before taking the record as that device's. */
	unsigned char dev_id[MW_DEVICE_ID_SIZE];
	uint32_t mailbox_no;
	char mailbox_guid_hex[MW_MAILBOX_GUID_HEX_SIZE];
	unsigned char key[MW_MSG_KEY_SIZE];	/* mw_msg_key() of the GUID */
	uint32_t uid;				/* hint: last UID seen */
	time_t retrieved, deleted, expunge_due;
	/* MW_MSG_NOTED_*: the suppression of this message's due expunge was
	   audited with that cause (0: not noted) */
	uint32_t noted;
};

struct mw_summary_rec {
	uint32_t uidvalidity, highest_uid;
	uint64_t highestmodseq;
	time_t time;
};

enum mw_device_event {
	MW_DEVICE_EVENT_REGISTERED,	/* new device created */
	MW_DEVICE_EVENT_EVICTED,	/* removed: device limit reached */
	MW_DEVICE_EVENT_EXPIRED,	/* removed: idle longer than expiry */
};

/* expunge_due value of a message whose disposition (mailward_pop3_disposition
   = seen) was carried out: it stays, nothing more is due for it. Any other
   non-zero value is a UNIX time. */
#define MW_MSG_DUE_DISPOSED ((time_t)1)

enum mw_msg_field {
	MW_MSG_RETRIEVED,	/* keeps the first time */
	MW_MSG_DELETED,		/* keeps the first time */
	MW_MSG_DUE,		/* overwrites; 0 clears */
	MW_MSG_NOTED,		/* overwrites with t (MW_MSG_NOTED_*); 0 clears;
				   never creates a record on its own */
};

/* noted values: the cause the suppression was audited with */
#define MW_MSG_NOTED_HOLD 1
#define MW_MSG_NOTED_FAIL_SAFE 2
/* a disposition move whose destination could not be used (audited as
   failed; the message stays due) */
#define MW_MSG_NOTED_MOVE_FAILED 3

/* Device event, called after the transaction committed (so only durable
   events are reported), outside any transaction. rec is valid during the
   call only. */
typedef void mw_device_event_cb(enum mw_device_event event,
				const struct mw_device_rec *rec, void *ctx);

struct mw_store_stat {
	size_t page_size;
	size_t map_size;	/* current map size of this handle */
	uint64_t used_pages;	/* last used page + 1 (file high-water mark) */
	uint64_t free_pages;	/* of those, on the freelist (reusable) */
	uint64_t file_size;	/* size of data.mdb */
	uint64_t msg_records;	/* device-message records */
	uint64_t devices, mailboxes;
	unsigned int map_grows;	/* growths done by this handle */
};

/* Bytes of a "GUID/hash" message key that depend on the GUID alone. */
#define MW_MSG_KEY_GUID_PART 4
/* Message key of a message GUID: the first 8 bytes of SHA-256 of the GUID
   string (as given, without NUL). An identity "GUID/hash" (a GUID that
   several messages can share, such as mbox's header hash, plus a hash of
   the message) gets the first MW_MSG_KEY_GUID_PART bytes of SHA-256 of
   the GUID followed by the first bytes of SHA-256 of the whole string:
   messages whose GUID part matches no key need no hash of the message.
   Computed here only (mw-crypto.c) with the installed crypto provider
   (mw-crypto.h); without a working one it aborts (a program's bug: a
   zero key would merge every message's records). */
void mw_msg_key(const char *msg_guid, unsigned char out[MW_MSG_KEY_SIZE]);

/* Opens (creating dir with missing parents 0700, and the environment) the
   store at dir. The handle is shared process-wide per realpath: opening
   the same directory again returns the same handle with its refcount
   raised. Every open runs mdb_reader_check() and checks the data file
   size. Returns 0 and *store_r, or -1 with *error_r (static buffer, valid
   until the next mw_store_open*). */
int mw_store_open(const char *dir, struct mw_store **store_r,
		  const char **error_r);
/* Same with an initial map size in bytes (rounded up to 64 KiB; for tests
   and tuning). Ignored when the handle is already open. */
int mw_store_open_mapsize(const char *dir, size_t mapsize,
			  struct mw_store **store_r, const char **error_r);
/* The path a damaged store was moved aside to (data.mdb.corrupt.<UTC
   time>) if this handle did it, else NULL; valid while the handle is
   open.
   Damage is detected where LMDB reports it (MDB_CORRUPTED,
   MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_VERSION_MISMATCH), where a record
   is malformed or the data file is shorter than its pages, and when LMDB
   faults on damaged pages (SIGSEGV, SIGBUS or a failed LMDB assertion
   inside a store call are caught; the process does not crash). Then the
   data file is renamed aside (never deleted) and its lock file removed;
   mw_store_open*() opens a fresh store in its place and returns it with
   this path set; any other call fails with an error naming the path, and
   the handle stays unusable (every call fails) until unreferenced.
   Callers must treat a reset as lost state: nothing may be expunged
   because of it. */
const char *mw_store_get_reset(struct mw_store *store);
/* TRUE if the reset was of a lost data file: this handle found an earlier
   store's lock.mdb without data.mdb, or with an empty one (truncated,
   deleted, restored without it). Nothing was moved aside;
   mw_store_get_reset() then names the data file, and the fresh store
   records its reset time (mw_store_get_reset_time()) like one that
   replaced a damaged store. */
bool mw_store_get_reset_lost(struct mw_store *store);
/* When this store replaced a damaged one (the fresh store records it),
   0 if never. State from before that time is lost: devices seen before
   may be unknown until they log in again, so no decision may take the
   known devices for all devices before they could have expired. */
time_t mw_store_get_reset_time(struct mw_store *store);
/* TRUE if this handle's open created the store (initialized an empty
   environment). */
bool mw_store_get_created(struct mw_store *store);
/* TRUE if the store records that the user's INBOX carries its marker
   (mw_store_set_inbox_marked()); read at open. A store without it is new
   (or older than the marker): the caller checks the INBOX for the
   marker of an earlier store, whose presence means the state directory
   was lost (deleted, restored without it), not that the user is new. */
bool mw_store_get_inbox_marked(struct mw_store *store);
/* Records that the INBOX carries the marker (meta "inbox_mark" = now).
   reset_time != 0: the marker of an earlier store was found, the state
   was lost then: also records it as the reset time
   (mw_store_get_reset_time()) unless the store already has one. One
   write transaction. Returns 0 or -1. */
int mw_store_set_inbox_marked(struct mw_store *store, time_t now,
			      time_t reset_time, const char **error_r);
/* --- legal hold mark ---
   A legal hold of the user recorded in the store (meta "legal_hold" = the
   UNIX time it was recorded), for sessions and tools opened before the
   hold was set, which cannot read the userdb again: a process whose own
   settings are fresh (a session or command start) makes the mark agree
   with them; any process re-reads it before deciding to expunge and
   holds when it is set. Stores without it (and mailward versions before
   it, which look meta keys up by name only) read as not held. */

/* Reads the mark in one read transaction. Returns 1 when it is set
   (*since_r = the time it was recorded), 0 when not (*since_r = 0), -1
   on error (*since_r = 0; the caller must then treat the user as held
   for the decision it was reading the mark for). */
int mw_store_hold_mark_get(struct mw_store *store, time_t *since_r,
			   const char **error_r);
/* Sets (hold true, recorded as now) or clears (hold false) the mark in
   one write transaction. A mark that is already so is left as it is (a
   set mark keeps its time) and nothing is written or synced: callers
   that read the mark first (mw_store_hold_mark_get()) write only when it
   differs. Returns 1 changed, 0 already so, -1 error (nothing changed). */
int mw_store_hold_mark_set(struct mw_store *store, bool hold, time_t now,
			   const char **error_r);

/* Drops one reference and sets *store to NULL; the last one closes the
   environment. No transaction may be active. NULL *store is a no-op. */
void mw_store_unref(struct mw_store **store);
/* Checks that the store belongs to user: the first call on a store that
   names no user records user (one write, then reads only). Returns 1 if
   it is user's (ASCII case ignored), 0 if it belongs to another user
   (*owner_r names that user, unescaped, at most 255 bytes, valid until
   the next call), -1 on error. A store directory shared by several
   users (mailward_state_dir without a per-user part) would mix their
   devices and records. */
int mw_store_check_owner(struct mw_store *store, const char *user,
			 const char **owner_r, const char **error_r);
/* The realpath of the store directory; valid while the handle is open. */
const char *mw_store_get_path(struct mw_store *store);
/* Current reference count (for tests and diagnostics). */
unsigned int mw_store_get_refcount(struct mw_store *store);
/* Fills *stat_r. Returns 0 or -1. */
int mw_store_get_stat(struct mw_store *store, struct mw_store_stat *stat_r,
		      const char **error_r);
/* Runs mdb_reader_check(); *cleared_r (may be NULL) gets the number of
   stale reader slots freed. Returns 0 or -1. */
int mw_store_reader_check(struct mw_store *store, unsigned int *cleared_r,
			  const char **error_r);
/* Counts reader slots held by other processes than this one (live or
   stale) into *count_r. Returns 0 or -1. */
int mw_store_reader_count_others(struct mw_store *store,
				 unsigned int *count_r, const char **error_r);

/* --- devices --- */

/* Looks up a device by its 32-hex id. Returns 1 (rec_r filled), 0 not
   found, -1 error (also for a malformed id). */
int mw_store_device_get(struct mw_store *store, const char *id_hex,
			struct mw_device_rec *rec_r, const char **error_r);
/* Session start: returns the device's record in *rec_r (may be NULL),
   creating it if new. A known device is rewritten (last_seen = now, label
   and protocol updated) only if its last_seen is MW_DEVICE_TOUCH_SECS or
   more before now; otherwise this is read-only. Creating a device first
   removes devices idle longer than expire_secs (0 = never) and then, while
   max_devices (0 = unlimited) or more exist, the least recently seen one
   (ties: lowest dev_no), with all their records; dev_no is the next one
   of a counter kept in the store (wrapping after 65535, skipping numbers
   in use), so a removed device's number is not reused by the next
   devices. cb (may be NULL) is called after commit for each removed and
   the registered device. label/protocol are sanitized (mw_sanitize():
   already-escaped text such as mw_device_describe() labels is kept as is,
   control bytes and invalid UTF-8 become \xNN) and truncated here.
   Returns 1 = created, 0 = known device, -1 = error. Counters are not
   changed (use mw_batch_device_touch). */
int mw_store_device_register(struct mw_store *store, const char *id_hex,
			     const char *label, const char *protocol,
			     time_t now, unsigned int max_devices,
			     time_t expire_secs, mw_device_event_cb *cb,
			     void *ctx, struct mw_device_rec *rec_r,
			     const char **error_r);
/* What mw_store_device_register_limits() may do to make room for a new
   device, and how many new devices it accepts. */
struct mw_device_limits {
	/* devices kept, 0 = unlimited */
	unsigned int max_devices;
	/* devices idle longer than this (seconds) are removed, 0 = never */
	time_t expire_secs;
	/* a device seen less than protect_secs before now is never
	   evicted, 0 = none is protected by its age */
	time_t protect_secs;
	/* further devices never evicted: protected_cb (may be NULL)
	   returns true for them. It runs inside the write transaction
	   (must not call the store); rec is valid during the call. */
	bool (*protected_cb)(const struct mw_device_rec *rec, void *ctx);
	void *protected_ctx;
	/* new devices accepted per UTC day (counted in the store), 0 =
	   unlimited */
	unsigned int new_per_day;
};

/* mw_store_device_register_limits(): the device was not registered */
#define MW_DEVICE_REFUSED_FULL 2	/* max_devices exist, none evictable */
#define MW_DEVICE_REFUSED_RATE 3	/* new_per_day reached today */

/* mw_store_device_register() with protection from eviction and a rate
   limit: a new device first expires idle devices, then evicts the least
   recently seen devices that are neither seen within protect_secs nor
   protected_cb's (ties: lowest dev_no) while max_devices or more exist;
   if they still do, the new device is refused (MW_DEVICE_REFUSED_FULL),
   never evicting a protected one. Before that, a new device beyond
   new_per_day new devices of this UTC day is refused
   (MW_DEVICE_REFUSED_RATE; nothing is removed). A refused device is not
   stored and no records can be kept for it; *rec_r (may be NULL) then
   gets its id, label and protocol with dev_no 0 and now as its times.
   Expiries done before a refusal stay (cb reports them). limits may not
   be NULL. Returns 1 created, 0 known, MW_DEVICE_REFUSED_*, -1 error. */
int mw_store_device_register_limits(struct mw_store *store,
				    const char *id_hex, const char *label,
				    const char *protocol, time_t now,
				    const struct mw_device_limits *limits,
				    mw_device_event_cb *cb, void *ctx,
				    struct mw_device_rec *rec_r,
				    const char **error_r);
/* Removes devices idle longer than expire_secs (> 0) with their records,

   reporting each through cb (may be NULL). Returns the number removed or
   -1 on error. For periodic cleanup (doveadm). */
int mw_store_device_expire(struct mw_store *store, time_t now,
			   time_t expire_secs, mw_device_event_cb *cb,
			   void *ctx, const char **error_r);
/* Calls cb for each device in dev_no order. The records are read in one
   transaction, then cb runs outside it (it may call the store). cb returns
   0 to continue, non-zero to stop. Returns 0 done, 1 stopped by cb, -1. */
int mw_store_device_iter(struct mw_store *store,
			 int (*cb)(const struct mw_device_rec *rec, void *ctx),
			 void *ctx, const char **error_r);
/* Removes the device whose id is id_prefix (32 hex digits) or, given 6 to
   31 hex digits, the only device whose id starts with them, together with
   all its message and summary records. rec_r (may be NULL) gets the
   removed record. Returns 1 removed, 0 not found, -1 error (also when the
   prefix is ambiguous or malformed). */
int mw_store_device_forget(struct mw_store *store, const char *id_prefix,
			   struct mw_device_rec *rec_r, const char **error_r);

/* --- reads --- */

/* Looks up one device-message record. mailbox_guid_hex: 32 hex digits.
   Returns 1 found, 0 not found (unknown mailbox included), -1 error. */
int mw_store_msg_get(struct mw_store *store, uint16_t dev_no,
		     const char *mailbox_guid_hex, const char *msg_guid,
		     struct mw_msg_rec *rec_r, const char **error_r);
/* Same with the message key instead of the GUID. */
int mw_store_msg_get_key(struct mw_store *store, uint16_t dev_no,
			 const char *mailbox_guid_hex,
			 const unsigned char key[MW_MSG_KEY_SIZE],
			 struct mw_msg_rec *rec_r, const char **error_r);
/* One record asked for by mw_store_msg_get_many(). */
struct mw_msg_query {
	/* in: the device and the message (mw_msg_key()) */
	uint16_t dev_no;
	unsigned char key[MW_MSG_KEY_SIZE];
	/* out: TRUE and rec filled if the record exists */
	bool found;
	struct mw_msg_rec rec;
};
/* Looks up count records of mailbox mailbox_guid_hex (32 hex digits) in
   one read transaction, as mw_store_msg_get_key() each (for a session end
   or a sweep that asks about many messages, or about one message for
   every device). queries is the caller's array; found and rec of each
   are set. count 0 reads nothing. Returns 0, or -1 on error (then found
   of every query is FALSE). */
int mw_store_msg_get_many(struct mw_store *store,
			  const char *mailbox_guid_hex,
			  struct mw_msg_query *queries, unsigned int count,
			  const char **error_r);
/* Calls cb for each record of device dev_no (-1 = all devices) in mailbox
   mailbox_guid_hex (NULL = all mailboxes), ordered by dev_no, mailbox_no,
   key. cb runs inside the read transaction (must not call the store); rec
   is valid during the call only; cb returns 0 to continue, non-zero to
   stop. Returns 0 done, 1 stopped by cb, -1 error. */
int mw_store_msg_iter(struct mw_store *store, int dev_no,
		      const char *mailbox_guid_hex,
		      int (*cb)(const struct mw_msg_rec *rec, void *ctx),
		      void *ctx, const char **error_r);
/* Reads the IMAP sync summary of (dev_no, mailbox). Returns 1, 0, -1. */
int mw_store_summary_get(struct mw_store *store, uint16_t dev_no,
			 const char *mailbox_guid_hex,
			 struct mw_summary_rec *rec_r, const char **error_r);

/* --- mailbox names --- */

/* Longest mailbox name whose GUID is remembered. */
#define MW_MAILBOX_NAME_MAX 400

/* The GUID last recorded for mailbox name (any string of 1 to
   MW_MAILBOX_NAME_MAX bytes) into guid_hex_r. Returns 1 found, 0 unknown,
   -1 error (also for a name that is empty or too long). */
int mw_store_mailbox_name_get(struct mw_store *store, const char *name,
			      char guid_hex_r[MW_MAILBOX_GUID_HEX_SIZE],
			      const char **error_r);
/* Records that name is mailbox new_guid_hex now, in one write
   transaction. old_guid_hex (NULL: none) is a GUID the caller knows no
   longer exists as a mailbox (e.g. the name's previous GUID, regenerated
   after its index was lost): its records and summaries become
   new_guid_hex's when new_guid_hex has none yet, and are removed
   otherwise. Returns 1 records were carried over, 0 not, -1 error. */
int mw_store_mailbox_name_set(struct mw_store *store, const char *name,
			      const char *old_guid_hex,
			      const char *new_guid_hex, const char **error_r);

/* Calls cb with the GUID of each mailbox that has records or summaries
   (or had them), read in one transaction; cb runs outside it (it may call
   the store) and returns 0 to continue, non-zero to stop. Returns 0 done,
   1 stopped by cb, -1 error. */
int mw_store_mailbox_iter(struct mw_store *store,
			  int (*cb)(const char *guid_hex, void *ctx),
			  void *ctx, const char **error_r);

/* --- writes: one transaction per batch --- */

/* Starts an in-memory batch on store (which must stay open until commit
   or abort). Nothing touches LMDB until mw_batch_commit(). Returns NULL
   only when out of memory. Argument errors of the batch_* calls below
   (bad hex, out of memory) are remembered and make commit fail. */
struct mw_batch *mw_batch_begin(struct mw_store *store);
/* Sets field of (dev_no, mailbox, message) to t (RETRIEVED/DELETED only if
   unset, DUE and NOTED always; NOTED alone never creates a record, t is
   an MW_MSG_NOTED_* value) and the uid hint to uid if non-zero. Updates
   that change nothing are not written. Updates for a
   dev_no that does not exist at commit are dropped (device forgotten). */
void mw_batch_msg_update(struct mw_batch *batch, uint16_t dev_no,
			 const char *mailbox_guid_hex, const char *msg_guid,
			 uint32_t uid, enum mw_msg_field field, time_t t);
/* Same with the message key instead of the GUID. */
void mw_batch_msg_update_key(struct mw_batch *batch, uint16_t dev_no,
			     const char *mailbox_guid_hex,
			     const unsigned char key[MW_MSG_KEY_SIZE],
			     uint32_t uid, enum mw_msg_field field, time_t t);
/* Removes the message's records for all devices (message expunged). */
void mw_batch_msg_prune(struct mw_batch *batch, const char *mailbox_guid_hex,
			const char *msg_guid);
/* Same with the message key (for prune-all-except-these sweeps). */
void mw_batch_msg_prune_key(struct mw_batch *batch,
			    const char *mailbox_guid_hex,
			    const unsigned char key[MW_MSG_KEY_SIZE]);
/* Removes all records and summaries of a mailbox (mailbox deleted). */
void mw_batch_mailbox_forget(struct mw_batch *batch,
			     const char *mailbox_guid_hex);
/* Raises last_seen to t (never lowers it) and adds to the counters of the
   device id_hex; a device that no longer exists at commit is ignored.
   When t is less than MW_DEVICE_TOUCH_SECS (mw_batch_set_touch_secs())
   after the device's last_seen,
   the device has counted a session already and nothing else of the
   batch changes the store, the touch is not
   written (the commit writes nothing), so its counts are not added:
   the counters count the sessions (and their retrievals/deletions) that
   were recorded, i.e. a session of the device is left out of them when
   it came within MW_DEVICE_TOUCH_SECS of its last recorded one and
   changed no state. */
void mw_batch_device_touch(struct mw_batch *batch, const char *id_hex,
			   time_t t, unsigned int add_sessions,
			   unsigned int add_retrieved,
			   unsigned int add_deleted);
/* Sets the IMAP summary of (dev_no, mailbox); dropped if the device no
   longer exists at commit. A summary equal to the stored one but for a
   time less than MW_DEVICE_TOUCH_SECS later is written only when the
   batch writes anyway. */
void mw_batch_summary_set(struct mw_batch *batch, uint16_t dev_no,
			  const char *mailbox_guid_hex, uint32_t uidvalidity,
			  uint32_t highest_uid, uint64_t highestmodseq,
			  time_t t);
/* Declares that the dev_no operations of this batch (message records,
   summaries) and the device_touch of id_hex were made by a session of the
   device id_hex, registered as dev_no. At commit, inside the write
   transaction, if that device no longer exists with this number (evicted,
   expired or forgotten since the session registered it), those operations
   are dropped: records are never attributed to another device, nor to a
   later registration of the same id. After a successful commit
   *dropped_r (may be NULL; the caller's memory, which must stay valid
   until commit or abort) is the number of operations dropped that way
   (> 0: the device was removed); it is 0 until then. Binding again
   replaces the previous binding. */
void mw_batch_bind_device(struct mw_batch *batch, const char *id_hex,
			  uint16_t dev_no, unsigned int *dropped_r);
/* Declares that the batch's operations on dev_no mean the device id
   (raw, e.g. mw_msg_rec.dev_id of the record they were decided on): at
   commit, inside the write transaction, if dev_no is not held by that
   device (removed, or its number handed to another device since), they
   are dropped, never applied to another device. Several numbers may be
   declared; declaring a number again replaces its id. Out of memory is
   remembered and fails the commit. */
void mw_batch_expect_device(struct mw_batch *batch, uint16_t dev_no,
			    const unsigned char id[MW_DEVICE_ID_SIZE]);
/* The granularity of this batch's device touches and summary times

   (see mw_batch_device_touch()), MW_DEVICE_TOUCH_SECS unless set; 0
   writes every touch. */
void mw_batch_set_touch_secs(struct mw_batch *batch, unsigned int secs);
/* Number of operations queued so far. */
unsigned int mw_batch_count(const struct mw_batch *batch);
/* Applies all operations in one write transaction, in the order given,
   growing the map and retrying the whole transaction on MDB_MAP_FULL (up
   to MW_STORE_MAX_MAPSIZE). An update that changes nothing is not written;
   when no operation changes anything (see mw_batch_device_touch()), the
   transaction is aborted: nothing is written or synced. Frees the batch
   and sets *batch to NULL in all cases. Returns 0 (all or nothing
   committed) or -1 (nothing committed). */
int mw_batch_commit(struct mw_batch **batch, const char **error_r);
/* Frees the batch without writing anything; sets *batch to NULL. */
void mw_batch_abort(struct mw_batch **batch);

#endif
