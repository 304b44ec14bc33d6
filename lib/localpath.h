/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the local path that a backend target names.
 *
 * A target that is not an NBD URI (backend_is_uri) names a local file or
 * block device.  It is a path, used as written, unless it begins like a
 * URI, SCHEME:// with SCHEME a letter followed by letters, digits, '+',
 * '-' or '.':
 *
 *   file:///PATH and file://localhost/PATH (RFC 8089) name /PATH, after
 *   %XX escapes are decoded.  A query or fragment ('?' or '#', which a
 *   path must escape as %3F and %23), another host, a bad escape and an
 *   escaped NUL byte are refused.
 *
 *   Any other scheme is refused as unknown, rather than opened as a
 *   relative path: "foo://host/x" is almost certainly a mistyped URI.  A
 *   relative path of that shape can be written ./foo://host/x.
 *
 * The path, as written or decoded, may not hold control characters
 * (bytes below 0x20, and 0x7f): they would break the list of backends
 * and the log.
 */

#ifndef SWAPTIER_LOCALPATH_H
#define SWAPTIER_LOCALPATH_H

/* The local path target names, in memory the caller frees, or NULL after
 * log_error naming the target and what is wrong with it.
 */
extern char *localpath_resolve (const char *target);

/* The offset of the first control character (a byte below 0x20, or
 * 0x7f) in s, or -1 if it holds none.
 */
extern int localpath_find_control (const char *s);

#endif /* SWAPTIER_LOCALPATH_H */
