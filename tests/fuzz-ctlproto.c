/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: libFuzzer target for the control protocol (lib/ctlproto).
 *
 * Each input is a line as a client of the control socket could send it,
 * up to and past CTL_LINE_MAX bytes, in a buffer of exactly its size (so
 * AddressSanitizer sees a read past it).  ctl_parse must return 0, or -1
 * with a NUL-terminated message; an accepted target must come back the
 * same through ctl_escape and a second parse; and ctl_field must cope
 * with the same bytes taken as a reply line.
 */

#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Parse "add TARGET" again with the target of an accepted add escaped:
 * the same target must come back, unless the escaped line is too long,
 * which must be refused.
 */
static void
fuzz_roundtrip (const struct ctl_command *cmd)
{
  static struct ctl_command again;
  static char line[4 + 3 * CTL_LINE_MAX], err[256];
  size_t len;
  int r;

  memcpy (line, "add ", 4);
  ctl_escape (cmd->target, line + 4, sizeof line - 4);
  len = strlen (line);
  r = ctl_parse (line, len, &again, err, sizeof err);
  if (len < CTL_LINE_MAX ? r != 0 || strcmp (again.target, cmd->target) != 0
      : r != -1)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct ctl_command cmd;
  char err[64], value[64], *copy;
  int r;

  memset (err, 'x', sizeof err);
  r = ctl_parse ((const char *) data, size, &cmd, err, sizeof err);
  if (r == -1 && memchr (err, '\0', sizeof err) == NULL)
    abort ();
  if (r != 0 && r != -1)
    abort ();
  if (r == 0 && cmd.verb == CTL_ADD)
    fuzz_roundtrip (&cmd);

  copy = malloc (size + 1);
  if (copy == NULL)
    return 0;
  memcpy (copy, data, size);
  copy[size] = '\0';
  if (ctl_field (copy, "id", value, sizeof value) &&
      memchr (value, '\0', sizeof value) == NULL)
    abort ();
  ctl_field (copy, "target", value, sizeof value);
  free (copy);
  return 0;
}
