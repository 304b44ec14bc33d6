/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: pages and slot addresses. */

#ifndef SWAPTIER_PAGE_H
#define SWAPTIER_PAGE_H

#include <stdint.h>

/* A page of the exported device and a slot of a backend are both 4 KiB. */
#define PAGE_SHIFT 12
#define PAGE_SIZE (UINT32_C (1) << PAGE_SHIFT)

/* A global slot address.  Backends own disjoint ranges of one 32-bit
 * space, with a gap of one address before each, so 0 is never a slot and
 * a run of consecutive addresses never crosses backends.
 */
typedef uint32_t slot_t;

#define SLOT_NONE ((slot_t) 0)           /* page map: page unmapped */
#define SLOT_LOST ((slot_t) UINT32_MAX)  /* page map: only copy unreadable */
/* The highest address a backend may own.  One address stays unused
 * between it and SLOT_LOST, so slot + 1 of a real slot is never LOST.
 */
#define SLOT_MAX ((slot_t) (UINT32_MAX - 2))

#endif /* SWAPTIER_PAGE_H */
