/* mailward core, LMDB state store: the process' handles (one per
   directory: LMDB must not open one environment twice in a process),
   opening, creating and closing, and the backend's operations table. */

#include "mw-store-lmdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAPSIZE_ROUND (64 * 1024)
/* waiting for another process' open or close of the same store: tries
   every millisecond, at most this often (about 5 s) */
#define OPEN_LOCK_ATTEMPTS 5000

static struct lmdb_store *stores = NULL;
static pid_t stores_pid = 0;
static char open_error[PATH_MAX + 512];

static const char *const db_names[] = {
	"meta", "devices", "messages", "mailboxes", "mailbox_nos", "summaries"
};
#define DB_COUNT (sizeof(db_names) / sizeof(db_names[0]))

static MDB_dbi *store_dbi(struct lmdb_store *s, unsigned int i)
{
	MDB_dbi *const dbis[DB_COUNT] = {
		&s->dbi_meta, &s->dbi_devices, &s->dbi_messages,
		&s->dbi_mailboxes, &s->dbi_mailbox_nos, &s->dbi_summaries
	};
	return dbis[i];
}

static unsigned int db_flags(unsigned int i)
{
	return i == 2 ? (MDB_DUPSORT | MDB_DUPFIXED) : 0;
}

static void MW_ATTR_FORMAT(1, 2) set_open_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(open_error, sizeof(open_error), fmt, args);
	va_end(args);
}

/* The open error of a failed call on path (errno err) with a hint. */
static void set_open_errno(const char *dir, const char *call,
			   const char *path, int err)
{
	char hint[MW_HINT_MAX];

	set_open_error("mailward store %s: %s(%s) failed: %s%s", dir, call,
		       path, strerror(err),
		       mw_access_hint(path, err, hint, sizeof(hint)));
}

/* LMDB maps its lock file after ftruncate(), which leaves it sparse: on
   a full filesystem the first write to the map is a SIGBUS. Allocate the
   blocks first, so a full disk is an error instead of a crash. */
#define LOCK_FILE_PREALLOC (32 * 1024)
/* lock_st: the lock file's stat() taken just before, NULL if it failed */
static int store_prealloc_lock(struct lmdb_store *s, const char *dir,
			       const struct stat *lock_st)
{
	char path[PATH_MAX + 16];
	struct stat st;
	off_t len = LOCK_FILE_PREALLOC;
	int fd, ret;

	if ((size_t)snprintf(path, sizeof(path), "%s/lock.mdb", dir) >=
	    sizeof(path)) {
		store_set_error(s, "lock file path too long");
		return -1;
	}
	if (lock_st != NULL && S_ISREG(lock_st->st_mode) &&
	    lock_st->st_size >= len &&
	    (off_t)lock_st->st_blocks * 512 >= lock_st->st_size) {
		/* allocated already (every open but the first) */
		return 0;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int err = errno;
		char hint[MW_HINT_MAX];

		store_set_error(s, "open(%s) failed: %s%s", path,
				strerror(err), mw_access_hint(path, err, hint,
							      sizeof(hint)));
		return -1;
	}
	if (fstat(fd, &st) == 0 && st.st_size > len)
		len = st.st_size;
	ret = posix_fallocate(fd, 0, len);
	close(fd);
	if (ret != 0 && ret != EOPNOTSUPP && ret != EINVAL) {
		store_set_error(s, "allocating %s failed: %s", path,
				strerror(ret));
		return -1;
	}
	return 0;
}

/* Creates dir with its missing parents (0700) unless it exists; *st_r
   gets the directory's stat. */
static int mkdir_parents(const char *dir, struct stat *st_r)
{
	char path[PATH_MAX];
	struct stat st;
	size_t len = strlen(dir), i;

	if (len == 0 || len >= sizeof(path)) {
		set_open_error("mailward store %s: invalid path", dir);
		return -1;
	}
	/* the usual case: it exists (one stat, no mkdir per component) */
	if (stat(dir, st_r) == 0 && S_ISDIR(st_r->st_mode))
		return 0;
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			set_open_errno(dir, "mkdir", path, errno);
			return -1;
		}
		path[i] = i == len ? '\0' : '/';
	}
	if (stat(dir, &st) < 0) {
		set_open_errno(dir, "stat", dir, errno);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		set_open_error("mailward store %s: not a directory", dir);
		return -1;
	}
	*st_r = st;
	return 0;
}

/* An absolute path without empty, "." or ".." components: used as it is
   (realpath() costs a readlink() per component). */
static bool path_is_plain(const char *dir)
{
	const char *p;

	if (dir[0] != '/')
		return false;
	for (p = dir; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		if (p[1] == '/' || p[1] == '\0' ||
		    (p[1] == '.' && (p[2] == '/' || p[2] == '\0')) ||
		    (p[1] == '.' && p[2] == '.' &&
		     (p[3] == '/' || p[3] == '\0')))
			return false;
	}
	return strlen(dir) < PATH_MAX;
}

/* The pages of the store that hold data: its last page + 1 less those on
   the freelist. LMDB's last page number is a high-water mark: a page it
   handed out and freed again in the same transaction is never written,
   so a sound data file may end before it (seen after a transaction that
   pruned many records); the pages in use are all written, so the file is
   at least as long as they are. Returns 0 or an LMDB code. */
static int store_pages_in_use(struct lmdb_store *s, uint64_t last_pgno,
			      uint64_t *pages_r)
{
	MDB_txn *txn;
	uint64_t free_pages = 0;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	rc = mw_lmdb_count_free_pages(txn, &free_pages);
	mdb_txn_abort(txn);
	if (rc != 0)
		return rc;
	*pages_r = last_pgno + 1 > free_pages ? last_pgno + 1 - free_pages : 0;
	return 0;
}

/* A data file shorter than its used pages would make LMDB touch mapped
   memory beyond the end of the file (SIGBUS): refuse it. */
static int store_check_size(struct lmdb_store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	uint64_t need, pages;
	int fd, rc;

	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &st)) != 0 ||
	    (rc = mdb_env_get_fd(s->env, &fd)) != 0) {
		store_set_error(s, "reading environment info failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	if (fstat(fd, &fst) < 0) {
		store_set_error(s, "fstat(data.mdb) failed: %s",
				strerror(errno));
		return -1;
	}
	need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)fst.st_size < need &&
	    (rc = store_pages_in_use(s, info.me_last_pgno, &pages)) == 0)
		need = pages * st.ms_psize;
	if ((uint64_t)fst.st_size < need) {
		mw_lmdb_set_corrupt(s, "corrupt store: data.mdb is %llu bytes but "
				"its pages need %llu (truncated?)",
				(unsigned long long)fst.st_size,
				(unsigned long long)need);
		return -1;
	}
	return 0;
}

/* store_check_format(): a format 1 store, upgraded by a write
   transaction (store_init_txn()) */
#define MW_RC_UPGRADE (-3)

static int store_check_format(struct lmdb_store *s, MDB_txn *txn)
{
	uint32_t format;
	int rc;

	rc = mw_lmdb_meta_get_u32(s, txn, "format", &format);
	if (rc != 0)
		return rc;
	if (format == 1)
		return MW_RC_UPGRADE;
	if (format != MW_STORE_FORMAT) {
		store_set_error(s, "unsupported store format %u (this "
				"version reads %u)", format, MW_STORE_FORMAT);
		return MW_RC_FAILED;
	}
	/* read here, in the open's own transaction: no extra cost */
	rc = mw_lmdb_meta_get_u32(s, txn, "inbox_mark", &format);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	s->base.inbox_marked = rc == 0;
	rc = mw_lmdb_meta_get_u32(s, txn, "reset_time", &format);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0)
		s->base.reset_time = (time_t)format;
	return rc;
}

static int store_init_txn(struct lmdb_store *s, MDB_txn *txn,
			  void *ctx __attribute__((unused)))
{
	unsigned int i;
	int rc;

	for (i = 0; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], db_flags(i) | MDB_CREATE,
				  store_dbi(s, i));
		if (rc != 0) {
			store_set_error(s, "mdb_dbi_open(%s) failed: %s",
					db_names[i], mdb_strerror(rc));
			if (mw_lmdb_rc_is_corrupt(rc))
				s->corrupt = true;
			return MW_RC_FAILED;
		}
	}
	rc = store_check_format(s, txn);
	if (rc == MDB_NOTFOUND) {
		rc = mw_lmdb_meta_put_u32(s, txn, "format", MW_STORE_FORMAT);
		s->base.created = rc == 0;
	} else if (rc == MW_RC_UPGRADE) {
		/* format 1 (mailward before the suppression mark): its
		   records read as not noted; all or nothing with the format */
		rc = mw_lmdb_upgrade_v1(s, txn);
		if (rc == 0) {
			rc = mw_lmdb_meta_put_u32(s, txn, "format",
						  MW_STORE_FORMAT);
		}
		if (rc == 0)
			rc = store_check_format(s, txn);
	}
	if (rc == 0 && s->base.data_lost && s->base.reset_time == 0) {
		/* with the format, atomically: the next open finds a data
		   file that is no longer empty but still knows the reset */
		time_t now = time(NULL);

		rc = mw_lmdb_meta_put_u32(s, txn, "reset_time", mw_time_to_u32(now));
		if (rc == 0)
			s->base.reset_time = now;
	}
	return rc;
}

static int store_init(struct lmdb_store *s)
{
	MDB_txn *txn;
	unsigned int i;
	int rc = 0;

	/* the common case: everything exists, a read transaction suffices
	   (DBI handles opened in it stay valid after mdb_txn_commit()) */
	if (mw_lmdb_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return -1;
	for (i = 0; i < DB_COUNT && rc == 0; i++)
		rc = mdb_dbi_open(txn, db_names[i], db_flags(i),
				  store_dbi(s, i));
	if (rc == 0)
		rc = store_check_format(s, txn);
	if (rc == 0) {
		rc = mw_lmdb_txn_commit(s, txn);
		return rc == 0 ? 0 : mw_lmdb_read_error(s, "mdb_txn_commit()", rc);
	}
	mw_lmdb_txn_abort(s, txn);
	if (rc == MW_RC_UPGRADE) {
		return mw_lmdb_write(s, "upgrading the store from format 1",
				     store_init_txn, NULL);
	}
	if (rc != MDB_NOTFOUND)
		return mw_lmdb_read_error(s, "opening databases", rc);
	return mw_lmdb_write(s, "creating databases", store_init_txn, NULL);
}

/* LMDB 0.9.29 to 0.9.31 (Debian 13) let mdb_env_close() destroy the
   lock file's shared mutexes when it finds no other user, which races
   with a process opening the store at that moment: that one attaches
   to the destroyed mutexes and every transaction of its session fails
   with EINVAL (LMDB ITS#10095). Opening and closing an environment
   therefore take turns under an exclusive flock() of the store
   directory (not of a file LMDB uses: closing another descriptor of
   that file would drop LMDB's own fcntl() locks). Returns the
   descriptor to pass to store_env_unlock(), or -1 when the lock could
   not be taken (not fatal: the open or close goes ahead as without
   it). Nested calls (a store created fresh while another is opened)
   take nothing: the outer call holds the lock already. */
static unsigned int env_lock_depth = 0;

static int store_env_lock(const char *dir)
{
	const struct timespec ms = { 0, 1000 * 1000 };
	unsigned int attempt;
	int fd;

	if (env_lock_depth++ > 0)
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (attempt = 0; attempt < OPEN_LOCK_ATTEMPTS; attempt++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		(void)nanosleep(&ms, NULL);
	}
	close(fd);
	return -1;
}

static void store_env_unlock(int fd)
{
	env_lock_depth--;
	if (fd >= 0)
		close(fd);
}

static void store_free(struct lmdb_store *s)
{
	sigjmp_buf buf, *saved;
	int lock_fd;

	if (s->env != NULL && s->pid == mw_lmdb_getpid()) {
		/* closing reads no data pages; guarded all the same */
		saved = mw_lmdb_guard_jmp;
		lock_fd = store_env_lock(s->base.path);
		if (sigsetjmp(buf, 0) == 0) {
			mw_lmdb_guard_jmp = &buf;
			mdb_env_close(s->env);
		}
		mw_lmdb_guard_jmp = saved;
		store_env_unlock(lock_fd);
	}
	if (s->pid == mw_lmdb_getpid())
		mw_lmdb_guard_unref();
	free(s->base.reset_path);
	free(s->base.path);
	free(s);
}


static int reset_time_txn(struct lmdb_store *s, MDB_txn *txn, void *ctx)
{
	return mw_lmdb_meta_put_u32(s, txn, "reset_time",
			    mw_time_to_u32(*(const time_t *)ctx));
}

static int reset_time_write(struct lmdb_store *s, time_t now)
{
	return mw_lmdb_write(s, "recording the reset", reset_time_txn, &now);
}

static int reset_time_write_guarded(struct lmdb_store *s, time_t now)
{
	const char *error;

	STORE_GUARDED(s, &error, reset_time_write(s, now));
}

/* TRUE if dir holds an earlier store's lock file but its data file is
   missing or empty (truncated, deleted, a restore without it). A new
   store gets its lock file and a data file with meta pages in one open;
   a crash in between, or a second process opening a new store at that
   moment, is taken as a loss too (which only keeps mail longer).
   *lock_st_r gets the lock file's stat, *have_lock_st_r whether it has
   one (the lock file preallocation needs no stat() of its own). */
static bool store_data_lost(const char *dir, struct stat *lock_st_r,
			    bool *have_lock_st_r)
{
	char path[PATH_MAX + 16];
	struct stat st;

	*have_lock_st_r = false;
	if ((size_t)snprintf(path, sizeof(path), "%s/lock.mdb", dir) >=
	    sizeof(path) || stat(path, lock_st_r) < 0)
		return false;
	*have_lock_st_r = true;
	(void)snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) < 0)
		return errno == ENOENT;
	return S_ISREG(st.st_mode) && st.st_size == 0;
}

/* Creates and opens the environment of s and its databases. */
static int store_env_open(struct lmdb_store *s, size_t mapsize)
{
	struct stat st, lock_st;
	bool have_lock_st;
	int rc, dead, fd;

	if ((rc = mdb_env_create(&s->env)) != 0) {
		store_set_error(s, "mdb_env_create() failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	(void)mdb_env_set_assert(s->env, mw_lmdb_assert_handler);
	if ((rc = mdb_env_set_maxdbs(s->env, DB_COUNT + 2)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, mapsize)) != 0) {
		store_set_error(s, "setting up the environment failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	s->base.data_lost = store_data_lost(s->base.path, &lock_st,
					    &have_lock_st);
	if (store_prealloc_lock(s, s->base.path,
				have_lock_st ? &lock_st : NULL) < 0)
		return -1;
	/* MDB_NOMETASYNC: one fdatasync per commit instead of two; a system
	   crash may undo the last transaction but never breaks integrity
	   (the state is advisory: losing the last session's records means
	   a device sees a message again, never that mail is lost) */
	if ((rc = mdb_env_open(s->env, s->base.path, MDB_NOMETASYNC, 0600)) != 0) {
		char hint[MW_HINT_MAX];

		store_set_error(s, "mdb_env_open() failed: %s%s",
				mdb_strerror(rc),
				mw_lmdb_rc_is_corrupt(rc) ? " (corrupt store)" :
				mw_access_hint(s->base.path, rc, hint,
					       sizeof(hint)));
		if (mw_lmdb_rc_is_corrupt(rc)) {
			/* LMDB closed nothing: remember the file to move */
			char data[PATH_MAX + 16];

			(void)snprintf(data, sizeof(data), "%s/data.mdb",
				       s->base.path);
			if (stat(data, &st) == 0) {
				s->data_dev = st.st_dev;
				s->data_ino = st.st_ino;
				s->corrupt = true;
			}
		}
		return -1;
	}
	if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &st) == 0) {
		s->data_dev = st.st_dev;
		s->data_ino = st.st_ino;
	}
	if ((rc = mdb_reader_check(s->env, &dead)) != 0) {
		store_set_error(s, "mdb_reader_check() failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	if (store_check_size(s) < 0 || store_init(s) < 0)
		return -1;
	return 0;
}

static int store_env_open_guarded0(struct lmdb_store *s, size_t mapsize)
{
	const char *error;

	STORE_GUARDED(s, &error, store_env_open(s, mapsize));
}

/* store_env_open() guarded, taking turns with other processes' opens
   and closes (store_env_lock()) */
static int store_env_open_guarded(struct lmdb_store *s, size_t mapsize)
{
	int lock_fd, ret;

	lock_fd = store_env_lock(s->base.path);
	ret = store_env_open_guarded0(s, mapsize);
	store_env_unlock(lock_fd);
	return ret;
}

static struct lmdb_store *store_alloc(const char *real)
{
	struct lmdb_store *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->base.path = strdup(real)) == NULL) {
		free(s);
		set_open_error("mailward store %s: out of memory", real);
		return NULL;
	}
	s->base.backend = &mw_store_backend_lmdb;
	s->base.refcount = 1;
	s->pid = mw_lmdb_getpid();
	mw_lmdb_guard_ref();
	return s;
}

void mw_lmdb_stores_unlink(struct lmdb_store *s)
{
	struct lmdb_store **p;

	for (p = &stores; *p != NULL; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	s->next = NULL;
}

/* Creates the store that replaces a damaged one at path, recording when
   (meta "reset_time"): what devices had before is lost, which callers
   must take into account (mw_store_get_reset_time()). Done by the process
   that moved the damaged file aside, so whichever process opens the
   directory next finds it. */
void mw_lmdb_create_fresh(const char *path, time_t now)
{
	static bool creating = false;
	struct lmdb_store *t;

	if (creating || (t = store_alloc(path)) == NULL)
		return;
	creating = true;
	if (store_env_open_guarded(t, (size_t)MW_STORE_DEFAULT_MAPSIZE) == 0)
		(void)reset_time_write_guarded(t, now);
	store_free(t);
	creating = false;
}

static int store_check_cached(struct lmdb_store *s)
{
	unsigned int cleared;
	const char *error;

	if (mw_lmdb_reader_check(&s->base, &cleared, &error) < 0)
		return -1;
	STORE_GUARDED(s, &error, store_check_size(s));
}

/* Creates dir if needed and finds its realpath (real, PATH_MAX bytes) and
   the process' handle of it (*cached_r, NULL: none). Returns 0 or -1 with
   the open error set. */
static int store_find(const char *dir, char *real, struct stat *dir_st,
		      struct lmdb_store **cached_r)
{
	struct lmdb_store *s;

	*cached_r = NULL;
	if (stores_pid != mw_lmdb_getpid()) {
		/* forked: handles of the parent must not be used or closed
		   here (closing would drop this process' own fcntl locks);
		   forget them */
		stores = NULL;
		stores_pid = mw_lmdb_getpid();
	}
	if (dir == NULL || mkdir_parents(dir, dir_st) < 0) {
		if (dir == NULL)
			set_open_error("mailward store: no directory given");
		return -1;
	}
	if (path_is_plain(dir))
		memcpy(real, dir, strlen(dir) + 1);
	else if (realpath(dir, real) == NULL) {
		set_open_error("mailward store %s: realpath() failed: %s",
			       dir, strerror(errno));
		return -1;
	}
	/* one handle per directory, whatever the spelling (LMDB must not
	   open one environment twice in a process) */
	for (s = stores; s != NULL; s = s->next) {
		if (s->dir_dev == dir_st->st_dev &&
		    s->dir_ino == dir_st->st_ino)
			break;
	}
	*cached_r = s;
	return 0;
}

/* Opens a new handle of real; a damaged store is moved aside and opened
   again, once. reset_path (malloc()ed or NULL) is taken over. Returns the
   handle or NULL with the open error set. */
static struct lmdb_store *
store_open_new(const char *real, const struct stat *dir_st, size_t mapsize,
	       char *reset_path)
{
	struct lmdb_store *s;
	unsigned int attempt;

	for (attempt = 0;; attempt++) {
		if ((s = store_alloc(real)) == NULL) {
			free(reset_path);
			return NULL;
		}
		s->dir_dev = dir_st->st_dev;
		s->dir_ino = dir_st->st_ino;
		if (store_env_open_guarded(s, mapsize) == 0)
			break;
		set_open_error("%s", s->base.error);
		if (attempt > 0 || !s->dead || s->base.reset_path == NULL) {
			free(reset_path);
			store_free(s);
			return NULL;
		}
		free(reset_path);
		reset_path = s->base.reset_path;
		s->base.reset_path = NULL;
		store_free(s);
	}
	if (reset_path == NULL && s->base.data_lost) {
		/* nothing to move aside: the data file itself is named */
		size_t len = strlen(real) + sizeof("/data.mdb");

		reset_path = malloc(len);
		if (reset_path != NULL)
			(void)snprintf(reset_path, len, "%s/data.mdb", real);
	}
	s->base.reset_path = reset_path;
	return s;
}

int mw_lmdb_open(const char *dir, size_t mapsize, struct mw_store **store_r,
		 const char **error_r)
{
	char real[PATH_MAX], *reset_path = NULL;
	struct lmdb_store *s;
	struct stat dir_st;

	*store_r = NULL;
	*error_r = open_error;
	if (store_find(dir, real, &dir_st, &s) < 0)
		return -1;
	if (s != NULL) {
		if (store_check_cached(s) == 0) {
			s->base.refcount++;
			*store_r = &s->base;
			return 0;
		}
		set_open_error("%s", s->base.error);
		if (!s->dead)
			return -1;
		/* moved aside: the old handle stays with its holders; open
		   a fresh one */
		reset_path = s->base.reset_path == NULL ? NULL :
			strdup(s->base.reset_path);
	}
	if (mapsize == 0)
		mapsize = (size_t)MW_STORE_DEFAULT_MAPSIZE;
	mapsize = (mapsize + MAPSIZE_ROUND - 1) / MAPSIZE_ROUND * MAPSIZE_ROUND;
	s = store_open_new(real, &dir_st, mapsize, reset_path);
	if (s == NULL)
		return -1;
	s->next = stores;
	stores = s;
	*store_r = &s->base;
	return 0;
}

void mw_lmdb_close(struct mw_store *store)
{
	struct lmdb_store *s = LMDB_STORE(store);

	mw_lmdb_stores_unlink(s);
	store_free(s);
}

struct inbox_mark_ctx {
	time_t now, reset_time;
};

static int inbox_mark_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	const struct inbox_mark_ctx *ctx = _ctx;
	uint32_t old;
	int rc;

	if (ctx->reset_time != 0) {
		rc = mw_lmdb_meta_get_u32(s, txn, "reset_time", &old);
		if (rc == MDB_NOTFOUND)
			rc = mw_lmdb_meta_put_u32(s, txn, "reset_time",
					  mw_time_to_u32(ctx->reset_time));
		if (rc != 0)
			return rc;
	}
	return mw_lmdb_meta_put_u32(s, txn, "inbox_mark", mw_time_to_u32(ctx->now));
}

static int store_set_inbox_marked(struct lmdb_store *s, time_t now,
				  time_t reset_time, const char **error_r)
{
	struct inbox_mark_ctx ctx = { now, reset_time };

	if (mw_lmdb_write(s, "recording the INBOX marker", inbox_mark_txn,
			&ctx) < 0)
		return store_fail(s, error_r);
	s->base.inbox_marked = true;
	if (reset_time != 0 && s->base.reset_time == 0)
		s->base.reset_time = reset_time;
	return 0;
}

int mw_lmdb_set_inbox_marked(struct mw_store *store, time_t now,
			     time_t reset_time, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_set_inbox_marked(s, now, reset_time,
							 error_r));
}

const struct mw_store_backend mw_store_backend_lmdb = {
	.name = "lmdb",
	.open = mw_lmdb_open,
	.close = mw_lmdb_close,
	.set_inbox_marked = mw_lmdb_set_inbox_marked,
	.check_owner = mw_lmdb_check_owner,
	.hold_mark_get = mw_lmdb_hold_mark_get,
	.hold_mark_set = mw_lmdb_hold_mark_set,
	.get_stat = mw_lmdb_get_stat,
	.reader_check = mw_lmdb_reader_check,
	.reader_count_others = mw_lmdb_reader_count_others,
	.device_get = mw_lmdb_device_get,
	.device_register = mw_lmdb_device_register,
	.device_expire = mw_lmdb_device_expire,
	.device_iter = mw_lmdb_device_iter,
	.device_forget = mw_lmdb_device_forget,
	.msg_get_key = mw_lmdb_msg_get_key,
	.msg_get_many = mw_lmdb_msg_get_many,
	.msg_iter = mw_lmdb_msg_iter,
	.summary_get = mw_lmdb_summary_get,
	.mailbox_name_get = mw_lmdb_mailbox_name_get,
	.mailbox_name_set = mw_lmdb_mailbox_name_set,
	.mailbox_iter = mw_lmdb_mailbox_iter,
	.batch_apply = mw_lmdb_batch_apply,
};
