/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the codec, what a page's bytes become on a backend and how
 * they are checked on the way back.
 *
 * Integrity: a CRC32C (the iSCSI polynomial, isa-l's crc32_iscsi, which
 * uses the CPU's crc32 or carry-less multiply instructions) of each
 * page's plaintext, 4 bytes a page, kept in memory by the engine and
 * verified on every read: a mismatch is a read error of that copy.
 *
 * Confidentiality: AES-256-XTS (OpenSSL's libcrypto), length preserving,
 * one 4096-byte data unit per slot, the tweak the slot's global address
 * (little endian, zero padded to 16 bytes), so a ciphertext moved to
 * another slot decrypts to garbage that the checksum rejects.  The key
 * (two 256-bit halves, which must differ) comes from getrandom at start,
 * lives in one page locked in memory, left out of core dumps
 * (MADV_DONTDUMP) and of children (MADV_WIPEONFORK) until the contexts
 * are keyed, then is wiped; it is never written, logged or sent.  The
 * contexts hold the expanded key until codec_destroy.  Each cipher
 * context serves one user at a time: the caller picks it by index (the
 * request's range-lock slot and copy).
 */

#ifndef SWAPTIER_CODEC_H
#define SWAPTIER_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include "page.h"

struct codec;

/* A codec with a new key and nctx cipher contexts.  NULL after
 * log_error.  (Pages in clear need no codec: codec_checksum is one.)
 */
extern struct codec *codec_create (unsigned nctx);

/* Wipe the key and free everything.  NULL is accepted. */
extern void codec_destroy (struct codec *c);

/* The name and version of the library that does the cipher (for
 * nbdkit --dump-plugin).
 */
extern const char *codec_cipher_library (void);

/* The CRC32C of one page of plaintext (the standard one: initial value
 * and final xor 0xffffffff, reflected polynomial 0x82f63b78).
 */
extern uint32_t codec_checksum (const void *page);

/* Encrypt (or decrypt) n pages from in to out (which may be the same),
 * page i of them for slot first + i, with context ctx.  Returns 0, or
 * -1 after log_error (a libcrypto failure).
 */
extern int codec_encrypt (struct codec *c, unsigned ctx, slot_t first,
                          uint32_t n, const void *in, void *out);
extern int codec_decrypt (struct codec *c, unsigned ctx, slot_t first,
                          uint32_t n, const void *in, void *out);

#endif /* SWAPTIER_CODEC_H */
