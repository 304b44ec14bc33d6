/* swaptier: local file and block device backend.
 *
 * Slots live at byte offset slot * PAGE_SIZE.  The file is opened with
 * O_DIRECT so that swap writes do not dirty the page cache of the very
 * machine that is short of memory; where the file system refuses O_DIRECT
 * the backend falls back to buffered I/O, says so, and relies on
 * fdatasync for flush and FUA.  The file is locked (flock) so that two
 * swaptier instances cannot share it.
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "backend.h"
#include "log.h"
#include "page.h"

struct file_backend {
  struct backend be;                   /* must be first */
  int fd;
  dev_t dev;
  ino_t ino;
};

static const struct backend_ops file_ops;
static const struct backend_ops block_ops;

/* The file backend behind a generic backend. */
static inline struct file_backend *
file_backend (struct backend *be)
{
  return (struct file_backend *) be;
}

/* Read n slots at slot into buf, looping over short reads.  A read past
 * the end of the file is an error, never zeroes.
 */
static int
file_read (struct backend *be, void *buf, uint64_t slot, uint64_t n)
{
  struct file_backend *fb = file_backend (be);
  uint64_t count = n * PAGE_SIZE;
  off_t offset = slot * PAGE_SIZE;
  char *p = buf;

  while (count > 0) {
    ssize_t r = pread (fb->fd, p, count, offset);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      log_error ("%s: read of %" PRIu64 " slots at slot %" PRIu64 ": %m",
                 be->target, n, slot);
      return -1;
    }
    if (r == 0) {
      log_error ("%s: read at slot %" PRIu64 ": unexpected end of file",
                 be->target, slot);
      errno = EIO;
      return -1;
    }
    p += r;
    offset += r;
    count -= r;
  }
  return 0;
}

/* Write n slots from buf at slot, looping over short writes.  With fua the
 * data is on stable storage when this returns (RWF_DSYNC, or fdatasync
 * where the kernel lacks it).
 */
static int
file_write (struct backend *be, const void *buf, uint64_t slot, uint64_t n,
            bool fua)
{
  struct file_backend *fb = file_backend (be);
  uint64_t count = n * PAGE_SIZE;
  off_t offset = slot * PAGE_SIZE;
  const char *p = buf;
  int flags = fua ? RWF_DSYNC : 0;

  while (count > 0) {
    struct iovec iov = { .iov_base = (void *) p, .iov_len = count };
    ssize_t r = pwritev2 (fb->fd, &iov, 1, offset, flags);

    if (r == -1 && errno == EOPNOTSUPP && flags) {
      flags = 0;
      continue;
    }
    if (r == -1) {
      if (errno == EINTR)
        continue;
      log_error ("%s: write of %" PRIu64 " slots at slot %" PRIu64 ": %m",
                 be->target, n, slot);
      return -1;
    }
    p += r;
    offset += r;
    count -= r;
  }
  if (fua && !flags)
    return be->ops->flush (be);
  return 0;
}

/* Make every completed write durable. */
static int
file_flush (struct backend *be)
{
  struct file_backend *fb = file_backend (be);

  if (fdatasync (fb->fd) == -1) {
    log_error ("%s: fdatasync: %m", be->target);
    return -1;
  }
  return 0;
}

/* Close the file (which drops the lock) and free the backend. */
static void
file_close (struct backend *be)
{
  struct file_backend *fb = file_backend (be);

  close (fb->fd);
  free (be->target);
  free (fb);
}

static const struct backend_ops file_ops = {
  .kind = "file",
  .read = file_read,
  .write = file_write,
  .flush = file_flush,
  .close = file_close,
};

static const struct backend_ops block_ops = {
  .kind = "block",
  .read = file_read,
  .write = file_write,
  .flush = file_flush,
  .close = file_close,
};

/* Make a regular file at least capacity bytes long with its blocks
 * allocated, so that no later write needs the file system to find space.
 */
static int
file_extend (int fd, const char *path, uint64_t capacity)
{
  struct stat st;

  if (fstat (fd, &st) == -1) {
    log_error ("%s: stat: %m", path);
    return -1;
  }
  if ((uint64_t) st.st_size >= capacity)
    return 0;
  if (fallocate (fd, 0, 0, capacity) == 0)
    return 0;
  if (errno != EOPNOTSUPP) {
    log_error ("%s: allocating %" PRIu64 " bytes: %m", path, capacity);
    return -1;
  }
  log_error ("%s: the file system cannot preallocate; extending the file "
             "sparsely, so writes may need file system allocations",
             path);
  if (ftruncate (fd, capacity) == -1) {
    log_error ("%s: extending to %" PRIu64 " bytes: %m", path, capacity);
    return -1;
  }
  return 0;
}

/* Open path read-write, with O_DIRECT if the file system allows it. */
static int
file_open_fd (const char *path, bool create)
{
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
  int fd = open (path, flags | O_DIRECT, 0600);

  if (fd == -1 && errno == EINVAL) {
    fd = open (path, flags, 0600);
    if (fd >= 0)
      log_error ("%s: the file system refuses O_DIRECT; using buffered I/O, "
                 "which dirties the page cache while swapping", path);
  }
  if (fd == -1)
    log_error ("%s: open: %m", path);
  return fd;
}

struct backend *
backend_file_open (const char *path, uint64_t capacity)
{
  struct file_backend *fb;
  struct stat st;
  uint64_t size;
  bool exists;
  int fd;

  exists = stat (path, &st) == 0;
  if (!exists && errno != ENOENT) {
    log_error ("%s: %m", path);
    return NULL;
  }
  if (!exists && capacity == 0) {
    log_error ("%s: no such file (give capacity= to create it)", path);
    return NULL;
  }
  if (exists && S_ISBLK (st.st_mode) && capacity > 0) {
    log_error ("%s: capacity= cannot be set for a block device; "
               "its size is probed", path);
    return NULL;
  }
  if (exists && !S_ISBLK (st.st_mode) && !S_ISREG (st.st_mode)) {
    log_error ("%s: not a regular file or block device", path);
    return NULL;
  }

  fd = file_open_fd (path, !exists);
  if (fd == -1)
    return NULL;
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      log_error ("%s: in use by another process (it holds a lock)", path);
    else
      log_error ("%s: flock: %m", path);
    goto err;
  }
  if (fstat (fd, &st) == -1) {
    log_error ("%s: stat: %m", path);
    goto err;
  }

  if (S_ISBLK (st.st_mode)) {
    if (ioctl (fd, BLKGETSIZE64, &size) == -1) {
      log_error ("%s: BLKGETSIZE64: %m", path);
      goto err;
    }
  }
  else if (capacity > 0) {
    if (file_extend (fd, path, capacity) == -1)
      goto err;
    size = capacity;
  }
  else
    size = st.st_size;

  if (size < PAGE_SIZE) {
    log_error ("%s: size %" PRIu64 " bytes is less than one %" PRIu32
               "-byte slot", path, size, PAGE_SIZE);
    goto err;
  }

  fb = calloc (1, sizeof *fb);
  if (fb == NULL || (fb->be.target = strdup (path)) == NULL) {
    log_error ("%s: %m", path);
    free (fb);
    goto err;
  }
  fb->be.ops = S_ISBLK (st.st_mode) ? &block_ops : &file_ops;
  fb->be.nslots = size / PAGE_SIZE;
  fb->fd = fd;
  fb->dev = S_ISBLK (st.st_mode) ? st.st_rdev : st.st_dev;
  fb->ino = S_ISBLK (st.st_mode) ? 0 : st.st_ino;
  return &fb->be;

 err:
  close (fd);
  return NULL;
}

bool
backend_file_identity (const struct backend *be, uint64_t *dev, uint64_t *ino)
{
  const struct file_backend *fb = (const struct file_backend *) be;

  if (be->ops != &file_ops && be->ops != &block_ops)
    return false;
  *dev = fb->dev;
  *ino = fb->ino;
  return true;
}
