/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the codec (see codec.h). */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include <isa-l/crc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "codec.h"
#include "log.h"

#define CODEC_KEY_BYTES 64             /* AES-256-XTS: two 256-bit keys */

struct codec {
  unsigned nctx;
  unsigned char *key;                  /* one locked page, or NULL */
  EVP_CIPHER_CTX **enc, **dec;         /* nctx each */
};

/* Fill the key from getrandom, until its two halves differ (XTS refuses
 * equal halves).
 */
static int
codec_new_key (unsigned char *key)
{
  size_t got = 0;

  do {
    while (got < CODEC_KEY_BYTES) {
      ssize_t r = getrandom (key + got, CODEC_KEY_BYTES - got, 0);

      if (r == -1 && errno != EINTR) {
        log_error ("codec: getrandom: %m");
        return -1;
      }
      if (r > 0)
        got += r;
    }
    got = memcmp (key, key + CODEC_KEY_BYTES / 2, CODEC_KEY_BYTES / 2) == 0
      ? 0 : CODEC_KEY_BYTES;
  } while (got == 0);
  return 0;
}

/* A page for the key: locked, out of core dumps, not inherited. */
static unsigned char *
codec_key_page (void)
{
  unsigned char *p = mmap (NULL, PAGE_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (p == MAP_FAILED) {
    log_error ("codec: key page: %m");
    return NULL;
  }
  if (mlock (p, PAGE_SIZE) == -1 ||
      madvise (p, PAGE_SIZE, MADV_DONTDUMP) == -1 ||
      madvise (p, PAGE_SIZE, MADV_WIPEONFORK) == -1) {
    log_error ("codec: locking the key page: %m");
    munmap (p, PAGE_SIZE);
    return NULL;
  }
  return p;
}

/* One context keyed for encryption (enc) or decryption. */
static EVP_CIPHER_CTX *
codec_context (const unsigned char *key, int enc)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();

  if (ctx == NULL ||
      EVP_CipherInit_ex (ctx, EVP_aes_256_xts (), NULL, key, NULL, enc)
      != 1) {
    log_error ("codec: setting up AES-256-XTS failed");
    EVP_CIPHER_CTX_free (ctx);
    return NULL;
  }
  return ctx;
}

struct codec *
codec_create (unsigned nctx)
{
  struct codec *c = calloc (1, sizeof *c);
  unsigned i;

  if (c == NULL) {
    log_error ("codec: %m");
    return NULL;
  }
  c->nctx = nctx;
  c->key = codec_key_page ();
  c->enc = calloc (nctx, sizeof *c->enc);
  c->dec = calloc (nctx, sizeof *c->dec);
  if (c->key == NULL || c->enc == NULL || c->dec == NULL ||
      codec_new_key (c->key) == -1)
    goto fail;
  for (i = 0; i < nctx; i++)
    if ((c->enc[i] = codec_context (c->key, 1)) == NULL ||
        (c->dec[i] = codec_context (c->key, 0)) == NULL)
      goto fail;
  /* The contexts hold the key now, expanded (an AES key schedule starts
   * with the key itself), on libcrypto's heap: locked with the rest of
   * the process by mlockall, kept out of core dumps by
   * PR_SET_DUMPABLE (see the plugin).  This page is no longer needed.
   */
  OPENSSL_cleanse (c->key, CODEC_KEY_BYTES);
  return c;
 fail:
  codec_destroy (c);
  return NULL;
}

void
codec_destroy (struct codec *c)
{
  unsigned i;

  if (c == NULL)
    return;
  for (i = 0; i < c->nctx; i++) {
    if (c->enc)
      EVP_CIPHER_CTX_free (c->enc[i]);
    if (c->dec)
      EVP_CIPHER_CTX_free (c->dec[i]);
  }
  free (c->enc);
  free (c->dec);
  if (c->key) {
    OPENSSL_cleanse (c->key, PAGE_SIZE);
    munmap (c->key, PAGE_SIZE);
  }
  free (c);
}

const char *
codec_cipher_library (void)
{
  return OpenSSL_version (OPENSSL_VERSION);
}

uint32_t
codec_checksum (const void *page)
{
  /* isa-l leaves the final inversion of the standard CRC32C to us. */
  return crc32_iscsi ((unsigned char *) page, PAGE_SIZE, 0xffffffff)
    ^ 0xffffffff;
}

/* Run n pages through ctx, the tweak of page i slot first + i. */
static int
codec_run (EVP_CIPHER_CTX *ctx, slot_t first, uint32_t n, const void *in,
           void *out)
{
  uint32_t i;

  for (i = 0; i < n; i++) {
    unsigned char tweak[16] = { 0 };
    uint64_t s = (uint64_t) first + i;
    int len;
    unsigned k;

    for (k = 0; k < 8; k++)
      tweak[k] = s >> (8 * k);
    /* The _ex2 form sets only the tweak: the older one costs about
     * 250 ns a page more in OpenSSL 3.0.
     */
    if (EVP_CipherInit_ex2 (ctx, NULL, NULL, tweak, -1, NULL) != 1 ||
        EVP_CipherUpdate (ctx, (unsigned char *) out + (size_t) i * PAGE_SIZE,
                          &len,
                          (const unsigned char *) in + (size_t) i * PAGE_SIZE,
                          PAGE_SIZE) != 1 ||
        len != PAGE_SIZE) {
      log_error ("codec: AES-256-XTS of slot %" PRIu64 " failed", s);
      errno = EIO;
      return -1;
    }
  }
  return 0;
}

int
codec_encrypt (struct codec *c, unsigned ctx, slot_t first, uint32_t n,
               const void *in, void *out)
{
  return codec_run (c->enc[ctx], first, n, in, out);
}

int
codec_decrypt (struct codec *c, unsigned ctx, slot_t first, uint32_t n,
               const void *in, void *out)
{
  return codec_run (c->dec[ctx], first, n, in, out);
}
