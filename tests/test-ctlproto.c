/* SPDX-License-Identifier: BSD-3-Clause */
/* swaptier: unit tests for the control protocol parser (lib/ctlproto).
 *
 * Each command is parsed in its valid forms and in the wrong ones that
 * a client may send: every wrong line must give -1 and a message naming
 * the problem, never a command.  Escaping is checked both ways, and the
 * field lookup that swaptierctl uses on replies.
 */

#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "ctlproto.h"
#include "test-common.h"
#include "tierset.h"

/* The last parse: its command and error message. */
static struct ctl_command test_cmd;
static char test_err[256];

/* Parse the NUL-terminated line; returns what ctl_parse returns. */
static int
test_parse (const char *line)
{
  test_err[0] = '\0';
  return ctl_parse (line, strlen (line), &test_cmd, test_err,
                    sizeof test_err);
}

/* Check that line is refused with a message containing what. */
static void
test_refused (const char *line, const char *what)
{
  ck_assert_msg (test_parse (line) == -1, "'%s' was accepted", line);
  ck_assert_msg (strstr (test_err, what) != NULL,
                 "'%s': message '%s' does not contain '%s'",
                 line, test_err, what);
}

/* The commands without arguments, with blanks around them. */
START_TEST (test_simple)
{
  static const struct { const char *line; enum ctl_verb verb; } t[] = {
    { "list", CTL_LIST }, { "  stats", CTL_STATS }, { "drain\t", CTL_DRAIN },
    { "help\r", CTL_HELP }, { " \tlist \t ", CTL_LIST },
  };
  size_t i;

  for (i = 0; i < sizeof t / sizeof t[0]; i++) {
    ck_assert_msg (test_parse (t[i].line) == 0, "'%s': %s", t[i].line,
                   test_err);
    ck_assert_int_eq (test_cmd.verb, t[i].verb);
  }
  test_refused ("list 1", "usage: list");
  test_refused ("stats now", "usage: stats");
  test_refused ("LIST", "unknown command 'LIST'");
  test_refused ("lis", "unknown command");
  test_refused ("", "empty command");
  test_refused (" \t ", "empty command");
}
END_TEST

/* priority ID N and remove ID: ids and priorities in range only. */
START_TEST (test_ids)
{
  ck_assert_int_eq (test_parse ("priority 3 -1"), 0);
  ck_assert_int_eq (test_cmd.verb, CTL_PRIORITY);
  ck_assert_uint_eq (test_cmd.id, 3);
  ck_assert_int_eq (test_cmd.priority, -1);
  ck_assert_int_eq (test_parse ("priority 0 32767"), 0);
  ck_assert_int_eq (test_cmd.priority, TIERSET_PRIORITY_MAX);
  ck_assert_int_eq (test_parse ("remove 1023"), 0);
  ck_assert_int_eq (test_cmd.verb, CTL_REMOVE);
  ck_assert_uint_eq (test_cmd.id, TIERSET_MAX_IDS - 1);

  test_refused ("priority 1", "usage: priority ID N");
  test_refused ("priority 1 2 3", "usage: priority ID N");
  test_refused ("priority 1 32768", "priority '32768' is not a number");
  test_refused ("priority 1 -2", "priority '-2'");
  test_refused ("priority 1 1x", "priority '1x'");
  test_refused ("priority 1 -", "priority '-'");
  test_refused ("priority 1 99999999999999999999999", "priority");
  test_refused ("priority -1 5", "'-1' is not a backend id");
  test_refused ("remove", "usage: remove ID");
  test_refused ("remove 1024", "'1024' is not a backend id");
  test_refused ("remove 0x1", "'0x1' is not a backend id");
  test_refused ("remove 1 2", "'2' is not key=value");
  test_refused ("remove 1 2 3 4",
                "usage: remove ID [rate=SIZE] [force=BOOL]");
  /* remove's keys, and cancel. */
  ck_assert_int_eq (test_parse ("remove 3 rate=4M force=yes"), 0);
  ck_assert (test_cmd.has_rate && test_cmd.rate == 4 << 20);
  ck_assert (test_cmd.has_force && test_cmd.force && test_cmd.id == 3);
  ck_assert_int_eq (test_parse ("remove 3 rate=0"), 0);
  ck_assert (test_cmd.has_rate && test_cmd.rate == 0 && !test_cmd.force);
  test_refused ("remove 3 rate=100", "rate=100: not 0 (no limit) nor a size");
  test_refused ("remove 3 rate=1M rate=2M", "rate= is given twice");
  test_refused ("remove 3 capacity=1M", "unknown key 'capacity' (expected "
                "rate= or force=)");
  ck_assert_int_eq (test_parse ("cancel"), 0);
  ck_assert_int_eq (test_cmd.verb, CTL_CANCEL);
  test_refused ("cancel 1", "usage: cancel");
  ck_assert_int_eq (test_parse ("revive 7"), 0);
  ck_assert (test_cmd.verb == CTL_REVIVE && test_cmd.id == 7);
  test_refused ("revive", "usage: revive ID");
  test_refused ("revive x", "'x' is not a backend id");
  test_refused ("remove +1", "not a backend id");
}
END_TEST

/* add TARGET [key=value...]: each key once, values in range. */
START_TEST (test_add)
{
  ck_assert_int_eq (test_parse ("add /dev/sdb1"), 0);
  ck_assert_int_eq (test_cmd.verb, CTL_ADD);
  ck_assert_str_eq (test_cmd.target, "/dev/sdb1");
  ck_assert (!test_cmd.has_priority);
  ck_assert_uint_eq (test_cmd.capacity, 0);

  ck_assert_int_eq (test_parse ("add /var/swap%20two priority=7 "
                                "capacity=2G"), 0);
  ck_assert_str_eq (test_cmd.target, "/var/swap two");
  ck_assert (test_cmd.has_priority);
  ck_assert_int_eq (test_cmd.priority, 7);
  ck_assert_uint_eq (test_cmd.capacity, UINT64_C (2) << 30);

  ck_assert_int_eq (test_parse ("add nbd://h/e connections=64 timeout=1 "
                                "grace=86400 priority=-1"), 0);
  ck_assert_uint_eq (test_cmd.connections, 64);
  ck_assert_uint_eq (test_cmd.timeout, 1);
  ck_assert_uint_eq (test_cmd.grace, 86400);
  ck_assert_int_eq (test_cmd.priority, -1);

  ck_assert_int_eq (test_parse ("add f capacity=4096"), 0);
  ck_assert_uint_eq (test_cmd.capacity, 4096);
  ck_assert_int_eq (test_parse ("add f capacity=4k"), 0);
  ck_assert_uint_eq (test_cmd.capacity, 4096);
  ck_assert_int_eq (test_parse ("add f capacity=5K"), 0);
  ck_assert_uint_eq (test_cmd.capacity, 5120);
  ck_assert_int_eq (test_parse ("add f capacity=15E"), 0);
  ck_assert_uint_eq (test_cmd.capacity, UINT64_C (15) << 60);
  /* A target may contain '=', and the first word after add is it. */
  ck_assert_int_eq (test_parse ("add a=b priority=1"), 0);
  ck_assert_str_eq (test_cmd.target, "a=b");

  test_refused ("add", "usage: add TARGET");
  test_refused ("add %00", "bad %-escape");
  test_refused ("add f priority=1 priority=2", "priority= is given twice");
  test_refused ("add f capacity=1M capacity=1M", "capacity= is given twice");
  test_refused ("add f timeout=5 timeout=5", "timeout= is given twice");
  test_refused ("add f priority", "'priority' is not key=value");
  test_refused ("add f speed=9", "unknown key 'speed'");
  test_refused ("add f priority=32768", "priority=32768: not a number");
  test_refused ("add f capacity=100", "at least one 4096-byte slot");
  test_refused ("add f capacity=0", "at least one 4096-byte slot");
  test_refused ("add f capacity=1X", "capacity=1X: not a size");
  test_refused ("add f capacity=1kk", "not a size");
  test_refused ("add f capacity=k", "not a size");
  test_refused ("add f capacity=-1", "not a size");
  test_refused ("add f capacity=16E", "not a size");
  test_refused ("add f capacity=99999999999999999999", "not a size");
  test_refused ("add f connections=0", "connections=0: not a number from 1 "
                "to 64");
  test_refused ("add f connections=65", "to 64");
  test_refused ("add f grace=86401", "grace=86401: not a number from 1 to "
                "86400");
  test_refused ("add f a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9",
                "too many words");

  /* force=, with the words nbdkit_parse_bool takes, once. */
  ck_assert_int_eq (test_parse ("add f"), 0);
  ck_assert (!test_cmd.has_force && !test_cmd.force);
  ck_assert_int_eq (test_parse ("add f force=true priority=1 capacity=1M "
                                "connections=1 timeout=1 grace=1"), 0);
  ck_assert (test_cmd.has_force && test_cmd.force);
  ck_assert_int_eq (test_parse ("add f force=OFF"), 0);
  ck_assert (test_cmd.has_force && !test_cmd.force);
  ck_assert_int_eq (test_parse ("add f force=1"), 0);
  ck_assert (test_cmd.force);
  test_refused ("add f force=maybe", "force=maybe: not true or false");
  test_refused ("add f force=true force=true", "force= is given twice");

  /* encrypt=, the same words, once; every key in one line. */
  ck_assert (!test_cmd.has_encrypt);
  ck_assert_int_eq (test_parse ("add f encrypt=off"), 0);
  ck_assert (test_cmd.has_encrypt && !test_cmd.encrypt);
  ck_assert_int_eq (test_parse ("add f encrypt=yes"), 0);
  ck_assert (test_cmd.has_encrypt && test_cmd.encrypt);
  ck_assert_int_eq (test_parse ("add f priority=1 capacity=1M force=true "
                                "connections=1 timeout=1 grace=1 domain=d "
                                "encrypt=0"), 0);
  ck_assert (test_cmd.has_encrypt && !test_cmd.encrypt);
  ck_assert_str_eq (test_cmd.domain, "d");
  test_refused ("add f encrypt=maybe", "encrypt=maybe: not on or off");
  test_refused ("add f encrypt=on encrypt=on", "encrypt= is given twice");
}
END_TEST

/* Escapes: %XX in either case, nothing else after '%'. */
START_TEST (test_escapes)
{
  ck_assert_int_eq (test_parse ("add %2fa%2Fb%25c%20d"), 0);
  ck_assert_str_eq (test_cmd.target, "/a/b%c d");
  ck_assert_int_eq (test_parse ("%6cist"), 0);
  ck_assert_int_eq (test_cmd.verb, CTL_LIST);
  ck_assert_int_eq (test_parse ("add %ff"), 0);
  ck_assert_str_eq (test_cmd.target, "\xff");

  test_refused ("add a%", "bad %-escape in 'a%'");
  test_refused ("add a%2", "bad %-escape");
  test_refused ("add a%g0", "bad %-escape");
  test_refused ("add a%00b", "bad %-escape");
  test_refused ("%0alist", "unknown command");

  /* A target may not hold a control character, escaped or not. */
  test_refused ("add a%09b", "the target holds a control character (byte "
                "0x09 at offset 1)");
  test_refused ("add /x%0Ay", "byte 0x0a at offset 2");
  test_refused ("add %1b", "byte 0x1b at offset 0");
  test_refused ("add x%7f", "byte 0x7f at offset 1");
}
END_TEST

/* Control characters, NUL bytes and long lines are refused whole. */
START_TEST (test_bad_bytes)
{
  char line[CTL_LINE_MAX + 10];
  size_t len;

  test_refused ("list\n", "control character (byte 0x0a)");
  test_refused ("li\033st", "control character (byte 0x1b)");
  test_refused ("list\x7f", "byte 0x7f");
  ck_assert_int_eq (ctl_parse ("list\0x", 6, &test_cmd, test_err,
                               sizeof test_err), -1);
  ck_assert_ptr_nonnull (strstr (test_err, "byte 0x00"));

  /* The longest line, then one byte more. */
  len = CTL_LINE_MAX - 1;
  memcpy (line, "add ", 4);
  memset (line + 4, 'x', len - 4);
  ck_assert_int_eq (ctl_parse (line, len, &test_cmd, test_err,
                               sizeof test_err), 0);
  ck_assert_uint_eq (strlen (test_cmd.target), len - 4);
  line[len] = 'x';
  ck_assert_int_eq (ctl_parse (line, len + 1, &test_cmd, test_err,
                               sizeof test_err), -1);
  ck_assert_ptr_nonnull (strstr (test_err, "longer than 4095 bytes"));

  /* A message quotes a long word in part only, and fits its buffer. */
  memcpy (line, "zzz", 3);
  ck_assert_int_eq (ctl_parse (line, len, &test_cmd, test_err, 16), -1);
  ck_assert_uint_eq (strlen (test_err), 15);
}
END_TEST

/* ctl_escape: printable bytes but '%' kept, the rest as %XX; truncated
 * on a whole escape; parsed back to the same bytes (by ctl_field for
 * every byte, by add for every byte a target may hold).
 */
START_TEST (test_escape_roundtrip)
{
  char all[256], out[3 * 256 + 8], line[3 * 256 + 32], small[6];
  char back[3 * 256 + 8];
  int i;

  for (i = 1; i < 256; i++)
    all[i - 1] = i;
  all[255] = '\0';
  ctl_escape (all, out, sizeof out);
  ck_assert_ptr_null (strpbrk (out, " \t\r\n"));
  snprintf (line, sizeof line, "backend target=%s", out);
  ck_assert (ctl_field (line, "target", back, sizeof back));
  ck_assert_str_eq (back, all);
  ctl_escape (all + 0x1f, out, sizeof out);
  all[0x7e] = '\0';
  snprintf (line, sizeof line, "add %s", out);
  ck_assert_int_eq (test_parse (line), -1);
  ck_assert_ptr_nonnull (strstr (test_err, "byte 0x7f"));
  ctl_escape (all + 0x1f, out, sizeof out);
  snprintf (line, sizeof line, "add %s", out);
  ck_assert_int_eq (test_parse (line), 0);
  ck_assert_str_eq (test_cmd.target, all + 0x1f);

  ck_assert_str_eq (ctl_escape ("a b", small, sizeof small), "a%20b");
  ck_assert_str_eq (ctl_escape ("ab cd", small, sizeof small), "ab%20");
  ck_assert_str_eq (ctl_escape ("abcd e", small, sizeof small), "abcd");
  ck_assert_str_eq (ctl_escape ("abcdefg", small, sizeof small), "abcde");
  ck_assert_str_eq (ctl_escape ("%", small, 1), "");
}
END_TEST

/* ctl_field: key=value words of a reply line, unescaped. */
START_TEST (test_field)
{
  const char *line = "backend id=12 target=/a%20b kind=file x= pid=7";
  char v[16];

  ck_assert (ctl_field (line, "id", v, sizeof v));
  ck_assert_str_eq (v, "12");
  ck_assert (ctl_field (line, "target", v, sizeof v));
  ck_assert_str_eq (v, "/a b");
  ck_assert (ctl_field (line, "x", v, sizeof v));
  ck_assert_str_eq (v, "");
  /* Whole keys only: "id" is not the end of "pid". */
  ck_assert (ctl_field ("ok pid=7 id=3", "id", v, sizeof v));
  ck_assert_str_eq (v, "3");
  ck_assert (!ctl_field (line, "backend", v, sizeof v));
  ck_assert (!ctl_field (line, "ki", v, sizeof v));
  ck_assert (!ctl_field (line, "size", v, sizeof v));
  ck_assert (!ctl_field ("a v=%00", "v", v, sizeof v));
  ck_assert (!ctl_field ("a v=%4", "v", v, sizeof v));
  ck_assert (!ctl_field ("a v=0123456789abcdef", "v", v, sizeof v));
  ck_assert (ctl_field ("a v=0123456789abcde", "v", v, sizeof v));
}
END_TEST

/* The suite of protocol tests. */
static Suite *
test_suite (void)
{
  Suite *s = suite_create ("ctlproto");
  TCase *tc = tcase_create ("parse");

  tcase_add_test (tc, test_simple);
  tcase_add_test (tc, test_ids);
  tcase_add_test (tc, test_add);
  tcase_add_test (tc, test_escapes);
  tcase_add_test (tc, test_bad_bytes);
  suite_add_tcase (s, tc);

  tc = tcase_create ("format");
  tcase_add_test (tc, test_escape_roundtrip);
  tcase_add_test (tc, test_field);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return test_common_main ("test-ctlproto", test_suite, NULL, NULL);
}
