/* Unit tests for util/status: messages, prefixes and the status -> HTTP / exit mappings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util/status.h"

static void fail_fills_code_and_message(void **state)
{
    (void)state;
    mcli_err err;
    mcli_err_clear(&err);
    assert_int_equal(mcli_fail(&err, MCLI_ERR_FORMAT, "%s: bad %d", "x.bin", 7), MCLI_ERR_FORMAT);
    assert_int_equal(err.code, MCLI_ERR_FORMAT);
    assert_string_equal(err.msg, "x.bin: bad 7");
}

static void prefix_keeps_old_message_after_context(void **state)
{
    (void)state;
    mcli_err err;
    mcli_fail(&err, MCLI_ERR_NOT_FOUND, "no such file");
    mcli_err_prefix(&err, "loading %s", "m");
    assert_string_equal(err.msg, "loading m: no such file");
    assert_int_equal(err.code, MCLI_ERR_NOT_FOUND);
}

static void overlong_message_is_truncated_not_overflowed(void **state)
{
    (void)state;
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mcli_err err;
    mcli_fail(&err, MCLI_ERR_IO, "%s", big);
    assert_int_equal(strlen(err.msg), MCLI_ERR_MSG_MAX - 1);
}

static void prefix_on_full_message_truncates_the_old_text(void **state)
{
    (void)state;
    char big[MCLI_ERR_MSG_MAX + 10];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mcli_err err;
    mcli_fail(&err, MCLI_ERR_IO, "%s", big);
    mcli_err_prefix(&err, "ctx");
    assert_int_equal(strlen(err.msg), MCLI_ERR_MSG_MAX - 1);
    assert_memory_equal(err.msg, "ctx: bbb", 8);
}

static void client_mistakes_map_to_4xx(void **state)
{
    (void)state;
    assert_int_equal(mcli_status_http(MCLI_ERR_INVALID_ARG), 400);
    assert_int_equal(mcli_status_http(MCLI_ERR_FORMAT), 400);
    assert_int_equal(mcli_status_http(MCLI_ERR_NOT_FOUND), 404);
    assert_int_equal(mcli_status_http(MCLI_ERR_TOO_LARGE), 413);
    assert_int_equal(mcli_status_http(MCLI_ERR_BUSY), 503);
    assert_int_equal(mcli_status_http(MCLI_ERR_INTERNAL), 500);
    assert_int_equal(mcli_status_exit(MCLI_ERR_INVALID_ARG), 2);
    assert_int_equal(mcli_status_exit(MCLI_OK), 0);
    assert_string_equal(mcli_status_name(MCLI_ERR_NOT_FOUND), "not_found");
    assert_string_equal(mcli_status_name((mcli_status)999), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fail_fills_code_and_message),
        cmocka_unit_test(prefix_keeps_old_message_after_context),
        cmocka_unit_test(overlong_message_is_truncated_not_overflowed),
        cmocka_unit_test(prefix_on_full_message_truncates_the_old_text),
        cmocka_unit_test(client_mistakes_map_to_4xx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
