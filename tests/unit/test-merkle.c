/* RFC 9162 Merkle tree code (src/core/mw-merkle.c): known-answer vectors
   (merkle-vectors.h, computed independently with Python's hashlib by
   gen-merkle-vectors.py; the roots are the Certificate Transparency
   reference vectors), exhaustive cross-checks of the compact range, the
   in-memory tree and the proof verifiers for small trees, and tampered
   proofs (changed hash, swapped siblings, wrong index or size, forged
   root, truncated or extended path) that must fail. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mw-merkle.h"
#include "merkle-vectors.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void from_hex(const char *hex, mw_merkle_hash out)
{
	unsigned int i, v;

	assert_int_equal(strlen(hex), 64);
	for (i = 0; i < 32; i++) {
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void kat_tree(struct mw_merkle_tree *t, unsigned int n)
{
	mw_merkle_hash leaf;
	unsigned int i;

	mw_merkle_tree_init(t);
	for (i = 0; i < n; i++) {
		assert_int_equal(mw_merkle_leaf_hash(kat_leaves[i].data,
						     kat_leaves[i].len,
						     leaf), 0);
		assert_int_equal(mw_merkle_tree_append(t, leaf), 0);
	}
}

static void test_kat_roots(void **state)
{
	struct mw_merkle_range r;
	struct mw_merkle_tree t;
	mw_merkle_hash want, got, leaf;
	unsigned int n;

	(void)state;
	kat_tree(&t, N_ELEMS(kat_leaves));
	mw_merkle_range_init(&r);
	for (n = 0; n <= N_ELEMS(kat_leaves); n++) {
		from_hex(kat_roots[n], want);
		assert_int_equal(mw_merkle_tree_root(&t, n, got), 0);
		assert_memory_equal(got, want, 32);
		assert_int_equal(mw_merkle_range_root(&r, got), 0);
		assert_memory_equal(got, want, 32);
		assert_true(mw_merkle_range_valid(&r));
		if (n < N_ELEMS(kat_leaves)) {
			assert_int_equal(mw_merkle_leaf_hash(
				kat_leaves[n].data, kat_leaves[n].len,
				leaf), 0);
			assert_int_equal(mw_merkle_range_append(&r, leaf), 0);
		}
	}
	assert_int_equal(mw_merkle_tree_root(&t, 9, got), -1);
	mw_merkle_tree_free(&t);
}

static void test_kat_inclusion(void **state)
{
	struct mw_merkle_tree t;
	mw_merkle_hash path[MW_MERKLE_MAX_PATH], want, root, leaf;
	unsigned int i, j, count;

	(void)state;
	kat_tree(&t, N_ELEMS(kat_leaves));
	for (i = 0; i < N_ELEMS(kat_inclusion); i++) {
		const typeof(kat_inclusion[0]) *k = &kat_inclusion[i];

		assert_int_equal(mw_merkle_tree_inclusion_proof(&t, k->a, k->n,
								path, &count),
				 0);
		assert_int_equal(count, k->count);
		for (j = 0; j < count; j++) {
			from_hex(k->hashes[j], want);
			assert_memory_equal(path[j], want, 32);
		}
		from_hex(kat_roots[k->n], root);
		assert_int_equal(mw_merkle_leaf_hash(kat_leaves[k->a].data,
						     kat_leaves[k->a].len,
						     leaf), 0);
		assert_int_equal(mw_merkle_verify_inclusion(leaf, k->a, k->n,
							    path, count, root),
				 0);
	}
	assert_int_equal(mw_merkle_tree_inclusion_proof(&t, 3, 3, path,
							&count), -1);
	mw_merkle_tree_free(&t);
}

static void test_kat_consistency(void **state)
{
	struct mw_merkle_tree t;
	mw_merkle_hash path[MW_MERKLE_MAX_PATH], want, r1, r2;
	unsigned int i, j, count;

	(void)state;
	kat_tree(&t, N_ELEMS(kat_leaves));
	for (i = 0; i < N_ELEMS(kat_consistency); i++) {
		const typeof(kat_consistency[0]) *k = &kat_consistency[i];

		assert_int_equal(mw_merkle_tree_consistency_proof(
			&t, k->a, k->n, path, &count), 0);
		assert_int_equal(count, k->count);
		for (j = 0; j < count; j++) {
			from_hex(k->hashes[j], want);
			assert_memory_equal(path[j], want, 32);
		}
		from_hex(kat_roots[k->a], r1);
		from_hex(kat_roots[k->n], r2);
		assert_int_equal(mw_merkle_verify_consistency(k->a, k->n, r1,
							      r2, path, count),
				 0);
		/* the other way round never verifies */
		assert_int_equal(mw_merkle_verify_consistency(k->n, k->a, r2,
							      r1, path, count),
				 -1);
	}
	mw_merkle_tree_free(&t);
}

/* leaves "0", "1", ... */
static void num_leaf(unsigned int i, mw_merkle_hash out)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%u", i);
	assert_int_equal(mw_merkle_leaf_hash(buf, strlen(buf), out), 0);
}

#define XN 70

/* every size, index and old size up to XN: the compact range equals the
   tree; every proof verifies; every single-hash change, sibling swap,
   wrong index/size, forged root and shortened/extended path fails */
static void test_exhaustive_small(void **state)
{
	struct mw_merkle_tree t;
	struct mw_merkle_range r;
	mw_merkle_hash path[MW_MERKLE_MAX_PATH + 1], root, root2, leaf, tmp;
	unsigned int n, m, j, count;

	(void)state;
	mw_merkle_tree_init(&t);
	mw_merkle_range_init(&r);
	for (n = 0; n < XN; n++) {
		num_leaf(n, leaf);
		assert_int_equal(mw_merkle_tree_append(&t, leaf), 0);
		assert_int_equal(mw_merkle_range_append(&r, leaf), 0);
		assert_int_equal(mw_merkle_tree_root(&t, n + 1, root), 0);
		assert_int_equal(mw_merkle_range_root(&r, root2), 0);
		assert_memory_equal(root, root2, 32);
		assert_true(mw_merkle_range_valid(&r));
	}
	for (n = 1; n <= XN; n++) {
		assert_int_equal(mw_merkle_tree_root(&t, n, root), 0);
		for (m = 0; m < n; m++) {
			num_leaf(m, leaf);
			assert_int_equal(mw_merkle_tree_inclusion_proof(
				&t, m, n, path, &count), 0);
			assert_int_equal(mw_merkle_verify_inclusion(
				leaf, m, n, path, count, root), 0);
			/* another leaf at this index */
			num_leaf(m + 1000, tmp);
			assert_int_equal(mw_merkle_verify_inclusion(
				tmp, m, n, path, count, root), -1);
			/* wrong index (the size is bound by the signed
			   root, not by the path: a path can fit two sizes) */
			if (n > 1) {
				assert_int_equal(mw_merkle_verify_inclusion(
					leaf, (m + 1) % n, n, path, count,
					root), -1);
			}
			assert_int_equal(mw_merkle_verify_inclusion(
				leaf, n, n, path, count, root), -1);
			/* forged root */
			memcpy(tmp, root, 32);
			tmp[31] ^= 1;
			assert_int_equal(mw_merkle_verify_inclusion(
				leaf, m, n, path, count, tmp), -1);
			/* each path hash changed */
			for (j = 0; j < count; j++) {
				path[j][j % 32] ^= 0x80;
				assert_int_equal(mw_merkle_verify_inclusion(
					leaf, m, n, path, count, root), -1);
				path[j][j % 32] ^= 0x80;
			}
			/* swapped siblings */
			if (count >= 2) {
				memcpy(tmp, path[0], 32);
				memcpy(path[0], path[1], 32);
				memcpy(path[1], tmp, 32);
				assert_int_equal(mw_merkle_verify_inclusion(
					leaf, m, n, path, count, root), -1);
				memcpy(path[1], path[0], 32);
				memcpy(path[0], tmp, 32);
			}
			/* shortened, extended */
			if (count > 0) {
				assert_int_equal(mw_merkle_verify_inclusion(
					leaf, m, n, path, count - 1, root), -1);
			}
			memcpy(path[count], root, 32);
			assert_int_equal(mw_merkle_verify_inclusion(
				leaf, m, n, path, count + 1, root), -1);
		}
		for (m = 0; m <= n; m++) {
			assert_int_equal(mw_merkle_tree_root(&t, m, root2), 0);
			assert_int_equal(mw_merkle_tree_consistency_proof(
				&t, m, n, path, &count), 0);
			assert_int_equal(mw_merkle_verify_consistency(
				m, n, root2, root, path, count), 0);
			if (m == 0)
				continue;
			/* forged old or new root */
			memcpy(tmp, root2, 32);
			tmp[0] ^= 1;
			assert_int_equal(mw_merkle_verify_consistency(
				m, n, tmp, root, path, count), -1);
			memcpy(tmp, root, 32);
			tmp[0] ^= 1;
			assert_int_equal(mw_merkle_verify_consistency(
				m, n, root2, tmp, path, count), -1);
			for (j = 0; j < count; j++) {
				path[j][7] ^= 0x01;
				assert_int_equal(mw_merkle_verify_consistency(
					m, n, root2, root, path, count), -1);
				path[j][7] ^= 0x01;
			}
			if (count > 0) {
				assert_int_equal(mw_merkle_verify_consistency(
					m, n, root2, root, path, count - 1), -1);
			}
			if (m < n) {
				/* wrong old size */
				assert_int_equal(mw_merkle_verify_consistency(
					m + 1, n, root2, root, path, count),
					-1);
			}
		}
	}
	mw_merkle_tree_free(&t);
}

/* a proof for one of 10^6 records has 20 hashes */
static void test_million_path_length(void **state)
{
	struct mw_merkle_tree t;
	struct mw_merkle_range r;
	mw_merkle_hash path[MW_MERKLE_MAX_PATH], root, root2, leaf;
	unsigned int i, count;

	(void)state;
	mw_merkle_tree_init(&t);
	mw_merkle_range_init(&r);
	for (i = 0; i < 1000000; i++) {
		num_leaf(i, leaf);
		assert_int_equal(mw_merkle_tree_append(&t, leaf), 0);
		assert_int_equal(mw_merkle_range_append(&r, leaf), 0);
	}
	assert_int_equal(r.count, 7); /* popcount(1000000) */
	assert_int_equal(mw_merkle_tree_root(&t, 1000000, root), 0);
	assert_int_equal(mw_merkle_range_root(&r, root2), 0);
	assert_memory_equal(root, root2, 32);
	num_leaf(123457, leaf);
	assert_int_equal(mw_merkle_tree_inclusion_proof(&t, 123457, 1000000,
							path, &count), 0);
	assert_int_equal(count, 20);
	assert_int_equal(mw_merkle_verify_inclusion(leaf, 123457, 1000000,
						    path, count, root), 0);
	assert_int_equal(mw_merkle_tree_consistency_proof(&t, 999999, 1000000,
							  path, &count), 0);
	assert_true(count <= 2 * 20);
	mw_merkle_tree_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kat_roots),
		cmocka_unit_test(test_kat_inclusion),
		cmocka_unit_test(test_kat_consistency),
		cmocka_unit_test(test_exhaustive_small),
		cmocka_unit_test(test_million_path_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
