/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: the value of a hexadecimal digit, for the %XX escapes of the
 * control protocol and of file:// URIs.
 */

#ifndef SWAPTIER_HEXDIGIT_H
#define SWAPTIER_HEXDIGIT_H

/* The value of the hex digit c (either case), or -1 if it is none. */
static inline int
hexdigit_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

#endif /* SWAPTIER_HEXDIGIT_H */
