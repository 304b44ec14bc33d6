/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the age map. */

#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "agemap.h"
#include "log.h"
#include "swapsafe.h"

#define AGEMAP_READ 0x80               /* read since last written */
#define AGEMAP_EPOCH 0x7f              /* epoch of the last access */

struct agemap {
  uint64_t npages;
  uint8_t *age;
  unsigned epoch;                      /* atomic; only agemap_tick adds */
};

struct agemap *
agemap_create (uint64_t npages)
{
  struct agemap *am;

  if (npages == 0 || npages > SIZE_MAX) {
    log_error ("age map: cannot map %" PRIu64 " pages", npages);
    return NULL;
  }
  am = calloc (1, sizeof *am);
  if (am == NULL) {
    log_error ("age map: %m");
    return NULL;
  }
  am->npages = npages;
  am->age = mmap (NULL, npages, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (am->age == MAP_FAILED) {
    log_error ("age map: mmap of %" PRIu64 " bytes: %m", npages);
    free (am);
    return NULL;
  }
  return am;
}

void
agemap_destroy (struct agemap *am)
{
  if (am) {
    munmap (am->age, am->npages);
    free (am);
  }
}

/* The epoch, as stored in a byte. */
static uint8_t
agemap_epoch (const struct agemap *am)
{
  return __atomic_load_n (&am->epoch, __ATOMIC_RELAXED) & AGEMAP_EPOCH;
}

/* Store b as the byte of page unless it holds b already. */
static void
agemap_store (struct agemap *am, uint64_t page, uint8_t b)
{
  if (__atomic_load_n (&am->age[page], __ATOMIC_RELAXED) != b)
    __atomic_store_n (&am->age[page], b, __ATOMIC_RELAXED);
}

void
agemap_written (struct agemap *am, uint64_t page, uint64_t n)
{
  uint8_t b = agemap_epoch (am);
  uint64_t i;

  for (i = 0; i < n; i++)
    agemap_store (am, page + i, b);
}

bool
agemap_read (struct agemap *am, uint64_t page)
{
  uint8_t old = __atomic_load_n (&am->age[page], __ATOMIC_RELAXED);

  agemap_store (am, page, agemap_epoch (am) | AGEMAP_READ);
  return (old & AGEMAP_READ) != 0;
}

/* The age of a byte b at epoch now, uncapped. */
static unsigned
agemap_raw_age (uint8_t now, uint8_t b)
{
  return (now - (b & AGEMAP_EPOCH)) & AGEMAP_EPOCH;
}

unsigned
agemap_age (const struct agemap *am, uint64_t page)
{
  unsigned age = agemap_raw_age (agemap_epoch (am),
                                 __atomic_load_n (&am->age[page],
                                                  __ATOMIC_RELAXED));

  return age < AGEMAP_AGE_MAX ? age : AGEMAP_AGE_MAX;
}

/* Rewrite every page older than AGEMAP_AGE_MAX as exactly that old,
 * keeping its read bit; an access meanwhile wins.
 */
static void
agemap_clamp (struct agemap *am)
{
  uint8_t now = agemap_epoch (am);
  uint8_t oldest = (now - AGEMAP_AGE_MAX) & AGEMAP_EPOCH;
  uint64_t page;

  for (page = 0; page < am->npages; page++) {
    uint8_t b = __atomic_load_n (&am->age[page], __ATOMIC_RELAXED);

    if (agemap_raw_age (now, b) > AGEMAP_AGE_MAX)
      __atomic_compare_exchange_n (&am->age[page], &b,
                                   (uint8_t) ((b & AGEMAP_READ) | oldest),
                                   false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  }
}

void
agemap_tick (struct agemap *am)
{
  unsigned epoch = __atomic_add_fetch (&am->epoch, 1, __ATOMIC_RELAXED);

  if (epoch % AGEMAP_CLAMP_TICKS == 0)
    agemap_clamp (am);
}

void
agemap_prefault (struct agemap *am)
{
  swapsafe_prefault (am->age, am->npages);
}

size_t
agemap_memory (const struct agemap *am)
{
  return am->npages;
}
