/* RFC 9162 §2.1 Merkle trees (MTH, PATH, PROOF and their verification)
   over SHA-256 from OpenSSL 3. See mw-merkle.h. */

#include "mw-merkle.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* The algorithm fetched and a context set up once per process: doing it
   per hash cost about a third of hashing a record (issue 14). The
   writer, the verifier and the CLI are single-threaded. */
static EVP_MD *sha256_md;
static EVP_MD_CTX *sha256_ctx;

int mw_sha256_prefixed(int prefix, const void *data, size_t len,
		       mw_merkle_hash out)
{
	unsigned char p = (unsigned char)prefix;
	unsigned int mdlen = 0;

	if (sha256_md == NULL &&
	    (sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		return -1;
	if (sha256_ctx == NULL && (sha256_ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex2(sha256_ctx, sha256_md, NULL) != 1 ||
	    (prefix >= 0 && EVP_DigestUpdate(sha256_ctx, &p, 1) != 1) ||
	    EVP_DigestUpdate(sha256_ctx, data, len) != 1 ||
	    EVP_DigestFinal_ex(sha256_ctx, out, &mdlen) != 1 ||
	    mdlen != MW_MERKLE_HASH_LEN)
		return -1;
	return 0;
}

int mw_merkle_leaf_hash(const void *data, size_t len, mw_merkle_hash out)
{
	return mw_sha256_prefixed(0x00, data, len, out);
}

int mw_merkle_node_hash(const mw_merkle_hash left, const mw_merkle_hash right,
			mw_merkle_hash out)
{
	unsigned char buf[2 * MW_MERKLE_HASH_LEN];

	memcpy(buf, left, MW_MERKLE_HASH_LEN);
	memcpy(buf + MW_MERKLE_HASH_LEN, right, MW_MERKLE_HASH_LEN);
	return mw_sha256_prefixed(0x01, buf, sizeof(buf), out);
}

int mw_merkle_empty_root(mw_merkle_hash out)
{
	unsigned int mdlen = 0;

	if (EVP_Digest("", 0, out, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != MW_MERKLE_HASH_LEN)
		return -1;
	return 0;
}

static unsigned int popcount64(uint64_t v)
{
	return (unsigned int)__builtin_popcountll(v);
}

/* the largest power of two smaller than n (n >= 2) */
static uint64_t split_point(uint64_t n)
{
	uint64_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

/* --- compact range --- */

void mw_merkle_range_init(struct mw_merkle_range *r)
{
	memset(r, 0, sizeof(*r));
}

int mw_merkle_range_append(struct mw_merkle_range *r,
			   const mw_merkle_hash leaf)
{
	mw_merkle_hash h;
	uint64_t s;
	unsigned int count = r->count;

	if (r->size >= (UINT64_C(1) << 63))
		return -1;
	memcpy(h, leaf, sizeof(h));
	/* every trailing 1 bit of size is a perfect subtree the new leaf
	   completes: merge right to left */
	for (s = r->size; (s & 1) != 0; s >>= 1) {
		if (count == 0 ||
		    mw_merkle_node_hash(r->hashes[count - 1], h, h) < 0)
			return -1;
		count--;
	}
	memcpy(r->hashes[count], h, sizeof(h));
	r->count = count + 1;
	r->size++;
	return 0;
}

int mw_merkle_range_root(const struct mw_merkle_range *r, mw_merkle_hash out)
{
	mw_merkle_hash h;
	unsigned int i;

	if (r->count == 0)
		return mw_merkle_empty_root(out);
	memcpy(h, r->hashes[r->count - 1], sizeof(h));
	for (i = r->count - 1; i > 0; i--) {
		if (mw_merkle_node_hash(r->hashes[i - 1], h, h) < 0)
			return -1;
	}
	memcpy(out, h, sizeof(h));
	return 0;
}

bool mw_merkle_range_valid(const struct mw_merkle_range *r)
{
	return r->count <= MW_MERKLE_MAX_PATH &&
		r->count == popcount64(r->size);
}

/* --- whole tree --- */

void mw_merkle_tree_init(struct mw_merkle_tree *t)
{
	memset(t, 0, sizeof(*t));
}

void mw_merkle_tree_free(struct mw_merkle_tree *t)
{
	unsigned int i;

	for (i = 0; i < MW_MERKLE_MAX_PATH; i++)
		free(t->level[i]);
	memset(t, 0, sizeof(*t));
}

uint64_t mw_merkle_tree_size(const struct mw_merkle_tree *t)
{
	return t->len[0];
}

static int level_push(struct mw_merkle_tree *t, unsigned int k,
		      const mw_merkle_hash h)
{
	if (t->len[k] == t->cap[k]) {
		uint64_t ncap = t->cap[k] == 0 ? 64 : t->cap[k] * 2;
		mw_merkle_hash *n;

		if (ncap > SIZE_MAX / sizeof(mw_merkle_hash))
			return -1;
		n = realloc(t->level[k], (size_t)ncap * sizeof(mw_merkle_hash));
		if (n == NULL)
			return -1;
		t->level[k] = n;
		t->cap[k] = ncap;
	}
	memcpy(t->level[k][t->len[k]], h, MW_MERKLE_HASH_LEN);
	t->len[k]++;
	if (k + 1 > t->levels)
		t->levels = k + 1;
	return 0;
}

int mw_merkle_tree_append(struct mw_merkle_tree *t, const mw_merkle_hash leaf)
{
	mw_merkle_hash h;
	unsigned int k = 0;

	if (t->len[0] >= (UINT64_C(1) << 62))
		return -1;
	if (level_push(t, 0, leaf) < 0)
		return -1;
	/* a level with an even count just completed a pair */
	while ((t->len[k] & 1) == 0 && k + 1 < MW_MERKLE_MAX_PATH) {
		if (mw_merkle_node_hash(t->level[k][t->len[k] - 2],
					t->level[k][t->len[k] - 1], h) < 0 ||
		    level_push(t, k + 1, h) < 0)
			return -1;
		k++;
	}
	return 0;
}

/* MTH(D[start:start+n]), n >= 1; start is a multiple of the largest
   power of two <= n whenever the recursion of RFC 9162 reaches it, so
   every perfect subtree is a stored node */
static int subtree_hash(const struct mw_merkle_tree *t, uint64_t start,
			uint64_t n, mw_merkle_hash out)
{
	mw_merkle_hash l, r;
	uint64_t k;
	unsigned int lvl;

	if ((n & (n - 1)) == 0 && start % n == 0) {
		lvl = (unsigned int)__builtin_ctzll(n);
		if (lvl >= t->levels || (start >> lvl) >= t->len[lvl])
			return -1;
		memcpy(out, t->level[lvl][start >> lvl], MW_MERKLE_HASH_LEN);
		return 0;
	}
	k = split_point(n);
	if (subtree_hash(t, start, k, l) < 0 ||
	    subtree_hash(t, start + k, n - k, r) < 0)
		return -1;
	return mw_merkle_node_hash(l, r, out);
}

int mw_merkle_tree_root(const struct mw_merkle_tree *t, uint64_t size,
			mw_merkle_hash out)
{
	if (size > t->len[0])
		return -1;
	if (size == 0)
		return mw_merkle_empty_root(out);
	return subtree_hash(t, 0, size, out);
}

static int push_path(mw_merkle_hash *path, unsigned int *count,
		     const struct mw_merkle_tree *t, uint64_t start,
		     uint64_t n)
{
	if (*count >= MW_MERKLE_MAX_PATH)
		return -1;
	if (subtree_hash(t, start, n, path[*count]) < 0)
		return -1;
	(*count)++;
	return 0;
}

/* PATH(m, D[start:start+n]) */
static int inclusion_path(const struct mw_merkle_tree *t, uint64_t m,
			  uint64_t start, uint64_t n, mw_merkle_hash *path,
			  unsigned int *count)
{
	uint64_t k;

	if (n <= 1)
		return 0;
	k = split_point(n);
	if (m < k) {
		if (inclusion_path(t, m, start, k, path, count) < 0)
			return -1;
		return push_path(path, count, t, start + k, n - k);
	}
	if (inclusion_path(t, m - k, start + k, n - k, path, count) < 0)
		return -1;
	return push_path(path, count, t, start, k);
}

int mw_merkle_tree_inclusion_proof(const struct mw_merkle_tree *t,
				   uint64_t index, uint64_t size,
				   mw_merkle_hash *path, unsigned int *count_r)
{
	*count_r = 0;
	if (index >= size || size > t->len[0])
		return -1;
	return inclusion_path(t, index, 0, size, path, count_r);
}

/* SUBPROOF(m, D[start:start+n], b) */
static int subproof(const struct mw_merkle_tree *t, uint64_t m,
		    uint64_t start, uint64_t n, bool b, mw_merkle_hash *path,
		    unsigned int *count)
{
	uint64_t k;

	if (m == n)
		return b ? 0 : push_path(path, count, t, start, m);
	k = split_point(n);
	if (m <= k) {
		if (subproof(t, m, start, k, b, path, count) < 0)
			return -1;
		return push_path(path, count, t, start + k, n - k);
	}
	if (subproof(t, m - k, start + k, n - k, false, path, count) < 0)
		return -1;
	return push_path(path, count, t, start, k);
}

int mw_merkle_tree_consistency_proof(const struct mw_merkle_tree *t,
				     uint64_t old_size, uint64_t new_size,
				     mw_merkle_hash *path,
				     unsigned int *count_r)
{
	*count_r = 0;
	if (old_size > new_size || new_size > t->len[0])
		return -1;
	if (old_size == 0 || old_size == new_size)
		return 0;
	return subproof(t, old_size, 0, new_size, true, path, count_r);
}

/* --- verification --- */

static bool hash_eq(const mw_merkle_hash a, const mw_merkle_hash b)
{
	return CRYPTO_memcmp(a, b, MW_MERKLE_HASH_LEN) == 0;
}

/* One step up the audit path (RFC 9162 §2.1.3.2, §2.1.4.2): TRUE if the
   next path hash is on the left of the node computed so far. fn and sn
   move to the parent level. */
static bool path_step(uint64_t *fn, uint64_t *sn)
{
	bool left = (*fn & 1) != 0 || *fn == *sn;

	if (left) {
		while ((*fn & 1) == 0 && *fn != 0) {
			*fn >>= 1;
			*sn >>= 1;
		}
	}
	*fn >>= 1;
	*sn >>= 1;
	return left;
}

int mw_merkle_verify_inclusion(const mw_merkle_hash leaf, uint64_t index,
			       uint64_t size, const mw_merkle_hash *path,
			       unsigned int count, const mw_merkle_hash root)
{
	mw_merkle_hash r;
	uint64_t fn = index, sn;
	unsigned int i;

	if (index >= size || count > MW_MERKLE_MAX_PATH)
		return -1;
	sn = size - 1;
	memcpy(r, leaf, sizeof(r));
	for (i = 0; i < count; i++) {
		if (sn == 0)
			return -1;
		if (path_step(&fn, &sn) ?
		    mw_merkle_node_hash(path[i], r, r) < 0 :
		    mw_merkle_node_hash(r, path[i], r) < 0)
			return -1;
	}
	return sn == 0 && hash_eq(r, root) ? 0 : -1;
}

int mw_merkle_verify_consistency(uint64_t old_size, uint64_t new_size,
				 const mw_merkle_hash old_root,
				 const mw_merkle_hash new_root,
				 const mw_merkle_hash *path,
				 unsigned int count)
{
	mw_merkle_hash fr, sr;
	uint64_t fn, sn;
	unsigned int i = 0;

	if (old_size > new_size || count > MW_MERKLE_MAX_PATH)
		return -1;
	if (old_size == 0)
		return count == 0 ? 0 : -1;
	if (old_size == new_size)
		return count == 0 && hash_eq(old_root, new_root) ? 0 : -1;
	if (count == 0)
		return -1;
	fn = old_size - 1;
	sn = new_size - 1;
	if ((old_size & (old_size - 1)) == 0) {
		/* old tree is a perfect subtree: its root starts the walk */
		memcpy(fr, old_root, sizeof(fr));
	} else {
		memcpy(fr, path[0], sizeof(fr));
		i = 1;
	}
	memcpy(sr, fr, sizeof(sr));
	while ((fn & 1) != 0) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < count; i++) {
		if (sn == 0)
			return -1;
		if (path_step(&fn, &sn) ?
		    (mw_merkle_node_hash(path[i], fr, fr) < 0 ||
		     mw_merkle_node_hash(path[i], sr, sr) < 0) :
		    mw_merkle_node_hash(sr, path[i], sr) < 0)
			return -1;
	}
	return sn == 0 && hash_eq(fr, old_root) && hash_eq(sr, new_root) ?
		0 : -1;
}
