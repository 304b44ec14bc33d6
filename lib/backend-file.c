/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: local file and block device backend.
 *
 * Layout: slot 0 of the file holds the header page (header.h); data slot
 * s lives at byte offset (s + 1) * PAGE_SIZE, so a file of size bytes
 * has size / PAGE_SIZE - 1 data slots.  The header is written when the
 * backend is opened, with this instance's claim, and again with
 * HEADER_RELEASED when it is closed.
 *
 * Who may use a file: it is locked (flock) so that two swaptier instances
 * cannot share it, and a block device is opened with O_EXCL, which the
 * kernel refuses (EBUSY) while the device is mounted, or while a
 * partition of it, or it as a partition, or a holder (device mapper,
 * RAID) is in use: what swapon refuses.  A file or device that existed
 * before must not hold anything else's data: if its slot 0 is a swaptier
 * header it is swaptier's own (a previous run's swap data, whatever
 * signature the device's pages put inside it, means nothing now), unless
 * that header is the live claim of another swaptier process on this host;
 * otherwise it is probed (signature.h) and refused if it holds a file
 * system, partition table, swap area or any other signature, unless the
 * backend is opened with force.  A file created now is swaptier's.
 *
 * Every failure of the opening after the file was created removes it, as
 * does discarding the backend; a file that existed is never removed.
 *
 * The file is opened with O_DIRECT so that swap writes do not dirty the
 * page cache of the very machine that is short of memory; where the file
 * system refuses O_DIRECT the backend falls back to buffered I/O, says
 * so, and relies on fdatasync for flush and FUA.
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
#include "header.h"
#include "log.h"
#include "page.h"
#include "signature.h"

/* Slots of the file before the first data slot: the header. */
#define FILE_HEADER_SLOTS 1

struct file_backend {
  struct backend be;                   /* must be first */
  int fd;
  dev_t dev;
  ino_t ino;
  bool created;                        /* this opening created the file */
  struct header claim;                 /* what slot 0 says while open */
  void *header_page;                   /* PAGE_SIZE aligned, for slot 0 */
};

static const struct backend_ops file_ops;
static const struct backend_ops block_ops;

/* The file backend behind a generic backend. */
static inline struct file_backend *
file_backend (struct backend *be)
{
  return (struct file_backend *) be;
}

/* Read count bytes at offset of fd into buf, looping over short reads.
 * A read past the end of the file is an error (EIO), never zeroes.
 * Returns 0, or -1 with errno set, having logged what failed.
 */
static int
file_pread_all (int fd, const char *target, void *buf, uint64_t count,
                off_t offset)
{
  char *p = buf;

  while (count > 0) {
    ssize_t r = pread (fd, p, count, offset);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      log_error ("%s: read of %" PRIu64 " bytes at offset %" PRIi64 ": %m",
                 target, count, (int64_t) offset);
      return -1;
    }
    if (r == 0) {
      log_error ("%s: read at offset %" PRIi64 ": unexpected end of file",
                 target, (int64_t) offset);
      errno = EIO;
      return -1;
    }
    p += r;
    offset += r;
    count -= r;
  }
  return 0;
}

/* Write count bytes from buf at offset of fd, looping over short writes.
 * With fua the data is on stable storage when this returns (RWF_DSYNC,
 * or fdatasync where the kernel lacks it).  Returns 0, or -1 with errno
 * set, having logged what failed.
 */
static int
file_pwrite_all (int fd, const char *target, const void *buf,
                 uint64_t count, off_t offset, bool fua)
{
  const char *p = buf;
  int flags = fua ? RWF_DSYNC : 0;

  while (count > 0) {
    struct iovec iov = { .iov_base = (void *) p, .iov_len = count };
    ssize_t r = pwritev2 (fd, &iov, 1, offset, flags);

    if (r == -1 && errno == EOPNOTSUPP && flags) {
      flags = 0;
      continue;
    }
    if (r == -1) {
      if (errno == EINTR)
        continue;
      log_error ("%s: write of %" PRIu64 " bytes at offset %" PRIi64 ": %m",
                 target, count, (int64_t) offset);
      return -1;
    }
    p += r;
    offset += r;
    count -= r;
  }
  if (fua && !flags && fdatasync (fd) == -1) {
    log_error ("%s: fdatasync: %m", target);
    return -1;
  }
  return 0;
}

/* Read n data slots at slot into buf. */
static int
file_read (struct backend *be, void *buf, uint64_t slot, uint64_t n)
{
  return file_pread_all (file_backend (be)->fd, be->target, buf,
                         n * PAGE_SIZE,
                         (slot + FILE_HEADER_SLOTS) * PAGE_SIZE);
}

/* Write n data slots from buf at slot; with fua, durably. */
static int
file_write (struct backend *be, const void *buf, uint64_t slot, uint64_t n,
            bool fua)
{
  return file_pwrite_all (file_backend (be)->fd, be->target, buf,
                          n * PAGE_SIZE,
                          (slot + FILE_HEADER_SLOTS) * PAGE_SIZE, fua);
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

/* Write fb->claim durably into slot 0.  Returns 0 or -1 after log_error. */
static int
file_write_header (struct file_backend *fb)
{
  header_encode (&fb->claim, fb->header_page);
  return file_pwrite_all (fb->fd, fb->be.target, fb->header_page, PAGE_SIZE,
                          0, true);
}

/* Remove path if it is still the file open at fd, which this process
 * created: never a file that replaced it meanwhile.
 */
static void
file_remove_created (int fd, const char *path)
{
  struct stat mine, now;

  if (fstat (fd, &mine) == -1 || stat (path, &now) == -1 ||
      mine.st_dev != now.st_dev || mine.st_ino != now.st_ino) {
    log_error ("%s: not removing it: it is no longer the file created",
               path);
    return;
  }
  if (unlink (path) == -1)
    log_error ("%s: removing the file created for it: %m", path);
}

/* Free the backend and close its file (if open), which drops the lock. */
static void
file_free (struct file_backend *fb)
{
  if (fb->fd >= 0)
    close (fb->fd);
  free (fb->header_page);
  free (fb->be.target);
  free (fb);
}

/* Release the claim in slot 0, then close the file and free the backend.
 * A failure to release is logged; the file is closed anyway.
 */
static void
file_close (struct backend *be)
{
  struct file_backend *fb = file_backend (be);

  fb->claim.flags |= HEADER_RELEASED;
  file_write_header (fb);
  file_free (fb);
}

/* Close the backend, removing its file if this opening created it. */
static void
file_discard (struct backend *be)
{
  struct file_backend *fb = file_backend (be);

  if (fb->created)
    file_remove_created (fb->fd, be->target);
  file_close (be);
}

/* Whether slot 0 still holds this backend's claim (see backend.h). */
static int
file_check_claim (struct backend *be)
{
  struct file_backend *fb = file_backend (be);
  struct header got;
  void *page;
  int err, r = -1;

  if ((err = posix_memalign (&page, PAGE_SIZE, PAGE_SIZE)) != 0) {
    log_error ("%s: %s", be->target, strerror (err));
    return -1;
  }
  if (file_pread_all (fb->fd, be->target, page, PAGE_SIZE, 0) == 0) {
    if (header_decode (page, &got) && header_same_claim (&got, &fb->claim))
      r = 0;
    else
      log_error ("%s: slot 0 no longer holds this instance's claim (it was "
                 "overwritten, or claimed by another)", be->target);
  }
  free (page);
  return r;
}

static const struct backend_ops file_ops = {
  .kind = "file",
  .check_claim = file_check_claim,
  .read = file_read,
  .write = file_write,
  .flush = file_flush,
  .close = file_close,
  .discard = file_discard,
};

static const struct backend_ops block_ops = {
  .kind = "block",
  .check_claim = file_check_claim,
  .read = file_read,
  .write = file_write,
  .flush = file_flush,
  .close = file_close,
  .discard = file_discard,
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

/* Open path read-write, with O_DIRECT if the file system allows it: a
 * new file with O_CREAT | O_EXCL (so that it is this process that
 * created it), a block device with O_EXCL (so that nothing mounted or
 * otherwise in use is written).
 */
static int
file_open_fd (const char *path, bool create, bool block)
{
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0) |
    (create || block ? O_EXCL : 0);
  int fd = open (path, flags | O_DIRECT, 0600);

  if (fd == -1 && errno == EINVAL) {
    fd = open (path, flags, 0600);
    if (fd >= 0)
      log_error ("%s: the file system refuses O_DIRECT; using buffered I/O, "
                 "which dirties the page cache while swapping", path);
  }
  if (fd >= 0)
    return fd;
  if (errno == EBUSY && block)
    log_error ("%s: in use (mounted, or a partition or holder of one in "
               "use): refused, as swapon would", path);
  else if (errno == EEXIST && create)
    log_error ("%s: created by someone else while being opened; not "
               "using it", path);
  else
    log_error ("%s: open: %m", path);
  return -1;
}

/* Decide whether the backend fb, whose file existed, may be used: read
 * its slot 0 and refuse a live claim of another swaptier process; if it
 * is not a swaptier header, probe it and refuse what holds a signature
 * unless force.  Returns 0, or -1 after log_error.
 */
static int
file_check_existing (struct file_backend *fb, uint64_t size, bool force)
{
  const char *path = fb->be.target;
  struct header old;
  char found[256];
  int r;

  if (size >= PAGE_SIZE &&
      file_pread_all (fb->fd, path, fb->header_page, PAGE_SIZE, 0) == -1)
    return -1;
  if (size >= PAGE_SIZE && header_decode (fb->header_page, &old)) {
    if (header_owner_alive_here (&old)) {
      log_error ("%s: in use by swaptier process %" PRIu32 " on this host "
                 "(the header in its slot 0 claims it)", path, old.pid);
      return -1;
    }
    log_debug ("%s: a swaptier backend (last used by process %" PRIu32
               " on %s%s)", path, old.pid, old.host,
               old.flags & HEADER_RELEASED ? ", released" : "");
    return 0;
  }
  if (force)
    return 0;
  r = signature_probe (fb->fd, path, found, sizeof found);
  if (r == 1)
    log_error ("backend %s: found %s; refused, as it would be "
               "overwritten (give force=true after the backend to use it "
               "anyway)", path, found);
  return r == 0 ? 0 : -1;
}

/* The size in bytes that the backend open at fd (stat st) will have:
 * the probed size of a block device, capacity if given, else the size
 * of the file.  Returns 0, or -1 after log_error.
 */
static int
file_size (int fd, const struct stat *st, const char *path,
           uint64_t capacity, uint64_t *size)
{
  if (S_ISBLK (st->st_mode)) {
    if (ioctl (fd, BLKGETSIZE64, size) == -1) {
      log_error ("%s: BLKGETSIZE64: %m", path);
      return -1;
    }
  }
  else
    *size = capacity > 0 ? capacity : (uint64_t) st->st_size;
  if (*size < (FILE_HEADER_SLOTS + 1) * PAGE_SIZE) {
    log_error ("%s: size %" PRIu64 " bytes is less than two %" PRIu32
               "-byte slots (slot 0 holds swaptier's header)",
               path, *size, PAGE_SIZE);
    return -1;
  }
  return 0;
}

/* Check what stat said of path before opening it. */
static int
file_check_type (const char *path, const struct stat *st, uint64_t capacity)
{
  if (S_ISBLK (st->st_mode) && capacity > 0) {
    log_error ("%s: capacity= cannot be set for a block device; "
               "its size is probed", path);
    return -1;
  }
  if (!S_ISBLK (st->st_mode) && !S_ISREG (st->st_mode)) {
    log_error ("%s: not a regular file or block device", path);
    return -1;
  }
  return 0;
}

struct backend *
backend_file_open (const char *path, uint64_t capacity, bool force)
{
  struct file_backend *fb;
  struct stat before, st;
  uint64_t size;
  bool exists;

  exists = stat (path, &before) == 0;
  if (!exists && errno != ENOENT) {
    log_error ("%s: %m", path);
    return NULL;
  }
  if (!exists && capacity == 0) {
    log_error ("%s: no such file (give capacity= to create it)", path);
    return NULL;
  }
  if (exists && file_check_type (path, &before, capacity) == -1)
    return NULL;

  fb = calloc (1, sizeof *fb);
  if (fb == NULL || (fb->be.target = strdup (path)) == NULL ||
      posix_memalign (&fb->header_page, PAGE_SIZE, PAGE_SIZE) != 0) {
    log_error ("%s: %m", path);
    if (fb)
      free (fb->be.target);
    free (fb);
    return NULL;
  }
  fb->fd = file_open_fd (path, !exists, exists && S_ISBLK (before.st_mode));
  if (fb->fd == -1)
    goto err;
  fb->created = !exists;
  if (flock (fb->fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      log_error ("%s: in use by another process (it holds a lock)", path);
    else
      log_error ("%s: flock: %m", path);
    goto err;
  }
  if (fstat (fb->fd, &st) == -1) {
    log_error ("%s: stat: %m", path);
    goto err;
  }
  if (exists && (st.st_mode & S_IFMT) != (before.st_mode & S_IFMT)) {
    log_error ("%s: changed while being opened", path);
    goto err;
  }
  if (file_size (fb->fd, &st, path, capacity, &size) == -1 ||
      (exists && file_check_existing (fb, S_ISBLK (st.st_mode) ? size
                                      : (uint64_t) st.st_size, force) == -1) ||
      (S_ISREG (st.st_mode) && capacity > 0 &&
       file_extend (fb->fd, path, capacity) == -1) ||
      header_init_self (&fb->claim, path) == -1 ||
      file_write_header (fb) == -1)
    goto err;

  fb->be.ops = S_ISBLK (st.st_mode) ? &block_ops : &file_ops;
  fb->be.nslots = size / PAGE_SIZE - FILE_HEADER_SLOTS;
  fb->dev = S_ISBLK (st.st_mode) ? st.st_rdev : st.st_dev;
  fb->ino = S_ISBLK (st.st_mode) ? 0 : st.st_ino;
  return &fb->be;

 err:
  if (fb->created)
    file_remove_created (fb->fd, path);
  file_free (fb);
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
