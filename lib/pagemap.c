/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the page map. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "log.h"
#include "pagemap.h"
#include "swapsafe.h"

struct pagemap {
  uint64_t npages;
  unsigned copies;
  size_t bytes;                        /* length of the mapping */
  slot_t *entry;
};

struct pagemap *
pagemap_create (uint64_t npages, unsigned copies)
{
  struct pagemap *map;

  if (copies < 1 || copies > PAGEMAP_COPIES_MAX) {
    log_error ("page map: %u copies (1 to %d)", copies, PAGEMAP_COPIES_MAX);
    return NULL;
  }
  if (npages == 0 || npages > SIZE_MAX / sizeof (slot_t) / copies) {
    log_error ("page map: cannot map %" PRIu64 " pages", npages);
    return NULL;
  }
  map = malloc (sizeof *map);
  if (map == NULL) {
    log_error ("page map: %m");
    return NULL;
  }
  map->npages = npages;
  map->copies = copies;
  map->bytes = npages * copies * sizeof (slot_t);
  /* Anonymous memory reads as zeroes, which is SLOT_NONE. */
  map->entry = mmap (NULL, map->bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map->entry == MAP_FAILED) {
    log_error ("page map: mmap of %zu bytes: %m", map->bytes);
    free (map);
    return NULL;
  }
  return map;
}

void
pagemap_destroy (struct pagemap *map)
{
  if (map) {
    munmap (map->entry, map->bytes);
    free (map);
  }
}

uint64_t
pagemap_npages (const struct pagemap *map)
{
  return map->npages;
}

unsigned
pagemap_copies (const struct pagemap *map)
{
  return map->copies;
}

/* The address of entry c of a page. */
static slot_t *
pagemap_entry (const struct pagemap *map, uint64_t page, unsigned c)
{
  return &map->entry[page * map->copies + c];
}

slot_t
pagemap_get (const struct pagemap *map, uint64_t page, unsigned c)
{
  return __atomic_load_n (pagemap_entry (map, page, c), __ATOMIC_ACQUIRE);
}

slot_t
pagemap_set (struct pagemap *map, uint64_t page, unsigned c, slot_t entry)
{
  return __atomic_exchange_n (pagemap_entry (map, page, c), entry,
                              __ATOMIC_ACQ_REL);
}

bool
pagemap_replace (struct pagemap *map, uint64_t page, unsigned c,
                 slot_t expected, slot_t entry)
{
  return __atomic_compare_exchange_n (pagemap_entry (map, page, c),
                                      &expected, entry, false,
                                      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

unsigned
pagemap_live (const struct pagemap *map, uint64_t page)
{
  unsigned c, n = 0;

  for (c = 0; c < map->copies; c++) {
    slot_t s = pagemap_get (map, page, c);

    n += s != SLOT_NONE && s != SLOT_LOST;
  }
  return n;
}

bool
pagemap_unmapped (const struct pagemap *map, uint64_t page)
{
  unsigned c;

  for (c = 0; c < map->copies; c++)
    if (pagemap_get (map, page, c) != SLOT_NONE)
      return false;
  return true;
}

void
pagemap_prefault (struct pagemap *map)
{
  swapsafe_prefault (map->entry, map->bytes);
}

size_t
pagemap_memory (const struct pagemap *map)
{
  return map->bytes;
}
