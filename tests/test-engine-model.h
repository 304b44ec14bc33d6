/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier tests: a device (engine and tier set over in-memory
 * backends) and a model of what it must hold, for the unit tests of the
 * engine (test-engine.c, test-engine-faults.c).
 *
 * The model is the device's bytes and whether each page holds a slot;
 * the requests below apply themselves to it, and test_model_check reads
 * the whole device back and compares it with the model, its extents
 * with the mapped pages, and the slots in use with the mapped pages
 * (invariant 5 checked on the way), so that a rewrite that leaked its
 * old slots would be seen.  Pages can also hold stamps, which tell
 * whose data a page read back is.  The tier set is built, and its
 * counters read, by test-set.h.  (Not the device of test-dev.h, which
 * has no model.)
 */

#ifndef SWAPTIER_TESTS_TEST_ENGINE_MODEL_H
#define SWAPTIER_TESTS_TEST_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "mem-backend.h"
#include "test-set.h"
#include "tierset.h"

/* The most extents the extent check collects. */
#define TEST_MAX_EXTENTS 1024

/* A device under test: the engine, its tier set and backends, and the
 * model of what the device must hold.
 */
struct test_model {
  struct tierset *ts;
  struct engine *e;
  unsigned n;
  struct backend *be[TEST_MAX_BACKENDS];
  uint64_t npages, size;
  char *model;                         /* expected bytes of the device */
  bool *mapped;                        /* expected: page holds a slot */
  char *buf;                           /* scratch: size + 2 pages */
};

/* Fill len bytes of buf with pseudo-random bytes. */
extern void test_fill_random (uint64_t *state, void *buf, size_t len);

/* Write the stamp of (page, version), version >= 1, into buf.  A stamp
 * fills a page: word 0 is the page, word 1 the version, the others
 * derive from both, so that a page read back tells whose data it is.
 */
extern void test_stamp (void *buf, uint64_t page, uint64_t version);

/* What one page of data holds: 0 if it is all zeroes, the version if it
 * is a whole stamp of page, UINT64_MAX for anything else (another page's
 * stamp, a torn or foreign page).
 */
extern uint64_t test_stamp_version (const void *buf, uint64_t page);

/* Build a device of npages pages with the given stripe, over n backends
 * (backend i has id i) failed after max_errors consecutive errors.
 */
extern void test_model_create (struct test_model *d, uint64_t npages,
                               uint32_t stripe, unsigned max_errors,
                               unsigned n, const uint64_t *nslots,
                               const int *priority);

/* Free the device and everything it holds. */
extern void test_model_destroy (struct test_model *d);

/* Stats of backend id of the device. */
extern struct tier_stats test_model_stats (struct test_model *d,
                                           unsigned id);

/* Check invariant 5 on every backend and return the slots in use, summed
 * over the backends.
 */
extern uint64_t test_model_used (struct test_model *d, const char *where);

/* The pages the model says are mapped. */
extern uint64_t test_model_mapped (const struct test_model *d);

/* The extents engine_extents reported, in order. */
struct test_extents {
  unsigned n;
  uint64_t offset[TEST_MAX_EXTENTS], length[TEST_MAX_EXTENTS];
  bool hole[TEST_MAX_EXTENTS];
  unsigned stop_after;                 /* fail the call after so many */
};

/* Extent callback: record the extent; fail once stop_after are recorded. */
extern int test_extent_fn (void *opaque, uint64_t offset, uint64_t length,
                           bool hole);

/* Check that the extents of the whole device cover it in order, in
 * alternating holes and data, with holes exactly where the model has
 * unmapped pages.
 */
extern void test_model_check_extents (struct test_model *d,
                                      const char *where);

/* Check the whole device against the model: its bytes, its extents,
 * invariant 5, and one slot in use per mapped page.
 */
extern void test_model_check (struct test_model *d, const char *where);

/* Write count bytes from src at offset, which must succeed, and apply
 * the write to the model: the pages it touches are mapped.
 */
extern void test_model_write (struct test_model *d, const void *src,
                              uint32_t count, uint64_t offset,
                              const char *where);

/* Requests that clear a range. */
enum test_clear {
  TEST_TRIM,                           /* engine_trim */
  TEST_ZERO,                           /* engine_zero, may unmap */
  TEST_ZERO_KEEP,                      /* engine_zero, keeping the space */
};

/* Clear count bytes at offset as told, which must succeed, and apply it
 * to the model.  Trim and zero unmap the whole pages they cover, which
 * read as zeroes; zero also zeroes the parts of the end pages it covers,
 * which keep their slot if they had one.  Zero keeping the space writes
 * zeroes, so every page it touches is mapped.
 */
extern void test_model_clear (struct test_model *d, enum test_clear how,
                              uint32_t count, uint64_t offset,
                              const char *where);

/* Read count bytes at offset into dst, which must succeed and give what
 * the model holds.
 */
extern void test_model_read (struct test_model *d, void *dst,
                             uint32_t count, uint64_t offset,
                             const char *where);

/* Counters of backend i of the device. */
extern struct mem_counters test_model_counters (struct test_model *d,
                                               unsigned i);

#endif /* SWAPTIER_TESTS_TEST_ENGINE_MODEL_H */
