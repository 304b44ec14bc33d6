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
  size_t bytes;                        /* length of the mapping */
  slot_t *entry;
};

struct pagemap *
pagemap_create (uint64_t npages)
{
  struct pagemap *map;

  if (npages == 0 || npages > SIZE_MAX / sizeof (slot_t)) {
    log_error ("page map: cannot map %" PRIu64 " pages", npages);
    return NULL;
  }
  map = malloc (sizeof *map);
  if (map == NULL) {
    log_error ("page map: %m");
    return NULL;
  }
  map->npages = npages;
  map->bytes = npages * sizeof (slot_t);
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

slot_t
pagemap_get (const struct pagemap *map, uint64_t page)
{
  return __atomic_load_n (&map->entry[page], __ATOMIC_ACQUIRE);
}

slot_t
pagemap_set (struct pagemap *map, uint64_t page, slot_t entry)
{
  return __atomic_exchange_n (&map->entry[page], entry, __ATOMIC_ACQ_REL);
}

bool
pagemap_replace (struct pagemap *map, uint64_t page, slot_t expected,
                 slot_t entry)
{
  return __atomic_compare_exchange_n (&map->entry[page], &expected, entry,
                                      false, __ATOMIC_ACQ_REL,
                                      __ATOMIC_ACQUIRE);
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
