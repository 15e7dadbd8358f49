#ifndef MW_MERKLE_H
#define MW_MERKLE_H

/* Merkle trees over audit records, RFC 9162 §2.1 (Certificate
   Transparency v2) hashing with SHA-256:
     leaf hash  = SHA-256(0x00 || data)
     node hash  = SHA-256(0x01 || left || right)
     MTH({})    = SHA-256("")
     MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of
                  two smaller than n
   The audit log uses it with one leaf per record line (the line's bytes
   without its newline, leaf index = seq - 1), see docs/audit-log.md §6.
   Pure logic over 32-byte hashes; SHA-256 comes from OpenSSL 3 (EVP).
   No Dovecot headers; never prints; no global state.

   Conventions: hashes are raw 32-byte arrays; functions return 0 on
   success and -1 on failure (only a failing libcrypto or out of memory;
   for the verify functions -1 means "does not verify"). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_MERKLE_HASH_LEN 32
/* a tree of at most 2^63 leaves: proofs and compact ranges hold at most
   this many hashes */
#define MW_MERKLE_MAX_PATH 64

typedef uint8_t mw_merkle_hash[MW_MERKLE_HASH_LEN];

/* out = SHA-256(prefix byte || data), or SHA-256(data) if prefix < 0.
   Keeps one fetched algorithm and one context per process (not
   thread-safe). Returns 0 or -1. */
int mw_sha256_prefixed(int prefix, const void *data, size_t len,
		       mw_merkle_hash out);
/* out = SHA-256(0x00 || data[0..len)). Returns 0 or -1. */
int mw_merkle_leaf_hash(const void *data, size_t len, mw_merkle_hash out);
/* out = SHA-256(0x01 || left || right); out may alias left or right.
   Returns 0 or -1. */
int mw_merkle_node_hash(const mw_merkle_hash left, const mw_merkle_hash right,
			mw_merkle_hash out);
/* out = SHA-256("") (the root of the empty tree). Returns 0 or -1. */
int mw_merkle_empty_root(mw_merkle_hash out);

/* --- compact range: the right edge of a growing tree, O(log n) --- */

/* The roots of the perfect subtrees that make up the tree of size leaves,
   one per set bit of size, largest (leftmost) first. This is all a
   writer needs to extend the tree and compute its root. */
struct mw_merkle_range {
	uint64_t size;
	unsigned int count;	/* = popcount(size) */
	mw_merkle_hash hashes[MW_MERKLE_MAX_PATH];
};

/* An empty range (size 0). */
void mw_merkle_range_init(struct mw_merkle_range *r);
/* Appends one leaf hash. Returns 0, or -1 (libcrypto failure, or the
   range is full at 2^63 leaves; r is then unchanged). */
int mw_merkle_range_append(struct mw_merkle_range *r,
			   const mw_merkle_hash leaf);
/* out = MTH of the r->size leaves appended so far. Returns 0 or -1. */
int mw_merkle_range_root(const struct mw_merkle_range *r, mw_merkle_hash out);
/* TRUE if r is well-formed: count == popcount(size). (For a range read
   from a file; whether the hashes are right only a root check can tell.) */
bool mw_merkle_range_valid(const struct mw_merkle_range *r);

/* --- a whole tree in memory (prover side) --- */

/* All levels of the tree: level 0 holds the leaf hashes, level k the
   roots of the complete, aligned subtrees of 2^k leaves. About 2 * 32
   bytes per leaf. Any prefix of the leaves (a checkpoint's tree) can be
   proved from it. */
struct mw_merkle_tree {
	mw_merkle_hash *level[MW_MERKLE_MAX_PATH];
	uint64_t len[MW_MERKLE_MAX_PATH];
	uint64_t cap[MW_MERKLE_MAX_PATH];
	unsigned int levels;
};

void mw_merkle_tree_init(struct mw_merkle_tree *t);
void mw_merkle_tree_free(struct mw_merkle_tree *t);
/* Number of leaves. */
uint64_t mw_merkle_tree_size(const struct mw_merkle_tree *t);
/* Appends one leaf hash (amortised O(1)). Returns 0 or -1 (out of
   memory, libcrypto). */
int mw_merkle_tree_append(struct mw_merkle_tree *t, const mw_merkle_hash leaf);
/* out = MTH(D[0:size]), size <= mw_merkle_tree_size(t). Returns 0 or -1. */
int mw_merkle_tree_root(const struct mw_merkle_tree *t, uint64_t size,
			mw_merkle_hash out);
/* The audit path PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), deepest
   sibling first, into path[] (MW_MERKLE_MAX_PATH entries) and *count_r.
   Requires index < size <= mw_merkle_tree_size(t). Returns 0 or -1. */
int mw_merkle_tree_inclusion_proof(const struct mw_merkle_tree *t,
				   uint64_t index, uint64_t size,
				   mw_merkle_hash *path, unsigned int *count_r);
/* The consistency proof PROOF(old_size, D[0:new_size]) (RFC 9162
   §2.1.4.1) into path[] (MW_MERKLE_MAX_PATH entries) and *count_r.
   Requires old_size <= new_size <= mw_merkle_tree_size(t); the proof is
   empty when old_size is 0 or equals new_size. Returns 0 or -1. */
int mw_merkle_tree_consistency_proof(const struct mw_merkle_tree *t,
				     uint64_t old_size, uint64_t new_size,
				     mw_merkle_hash *path,
				     unsigned int *count_r);

/* --- verification (needs only the hashes; RFC 9162 §2.1.3.2, §2.1.4.2) --- */

/* Returns 0 if path proves that leaf is the leaf at index in the tree of
   size leaves whose root is root; -1 otherwise (index >= size, a path of
   the wrong length, a hash mismatch, libcrypto failure). */
int mw_merkle_verify_inclusion(const mw_merkle_hash leaf, uint64_t index,
			       uint64_t size, const mw_merkle_hash *path,
			       unsigned int count, const mw_merkle_hash root);
/* Returns 0 if path proves that the tree of old_size leaves with root
   old_root is a prefix of the tree of new_size leaves with root
   new_root; -1 otherwise. old_size 0 is consistent with any tree (path
   must be empty); old_size == new_size requires an empty path and equal
   roots; old_size > new_size never verifies. */
int mw_merkle_verify_consistency(uint64_t old_size, uint64_t new_size,
				 const mw_merkle_hash old_root,
				 const mw_merkle_hash new_root,
				 const mw_merkle_hash *path,
				 unsigned int count);

#endif
