/* SPDX-License-Identifier: BSD-3-Clause */
/* A malloc(3) for nbdkit under test (LD_PRELOAD) that fails with ENOMEM,
 * for sizes from FAILMALLOC_MIN to FAILMALLOC_MAX bytes, while the file
 * FAILMALLOC_FLAG exists: a shortage of memory that comes and goes, at
 * the sizes the test chooses (test-remote-pipeline.sh: a remote
 * command's copy of one page).
 */

#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc (size_t size);

/* Whether a malloc of size must fail now. */
static int
failmalloc_now (size_t size)
{
  const char *min = getenv ("FAILMALLOC_MIN");
  const char *max = getenv ("FAILMALLOC_MAX");
  const char *flag = getenv ("FAILMALLOC_FLAG");

  return min && max && flag && size >= strtoull (min, NULL, 10) &&
    size <= strtoull (max, NULL, 10) && access (flag, F_OK) == 0;
}

void *
malloc (size_t size)
{
  if (failmalloc_now (size)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_malloc (size);
}
