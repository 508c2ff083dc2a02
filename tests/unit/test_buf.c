/* Unit tests for util/buf: growth keeps the bytes and the NUL, the cap is exact, failures leave the
 * buffer unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void appends_grow_and_stay_nul_terminated(void **state)
{
    (void)state;
    char *d = NULL;
    size_t len = 0, cap = 0;
    char chunk[100];
    for (int i = 0; i < 100; i++)
        chunk[i] = (char)('a' + i % 26);
    for (int k = 0; k < 50; k++)
        assert_int_equal(buf_append(&d, &len, &cap, 0, chunk, sizeof chunk), MCLI_OK);
    assert_int_equal(len, 5000);
    assert_true(cap >= 5001);
    assert_int_equal(d[5000], '\0');
    for (size_t i = 0; i < len; i++)
        assert_int_equal(d[i], 'a' + (int)(i % 100) % 26);
    free(d);
}

static void empty_append_allocates_an_empty_string(void **state)
{
    (void)state;
    char *d = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(buf_append(&d, &len, &cap, 0, "", 0), MCLI_OK);
    assert_non_null(d);
    assert_string_equal(d, "");
    free(d);
}

static void cap_is_exact_and_refusal_leaves_buffer_unchanged(void **state)
{
    (void)state;
    char *d = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(buf_append(&d, &len, &cap, 10, "0123456789", 10), MCLI_OK); /* exactly max */
    assert_true(cap <= 11);
    assert_int_equal(buf_append(&d, &len, &cap, 10, "x", 1), MCLI_ERR_TOO_LARGE);
    assert_int_equal(len, 10);
    assert_string_equal(d, "0123456789");
    free(d);
}

static void size_overflow_is_too_large_not_a_wraparound(void **state)
{
    (void)state;
    char *d = NULL;
    size_t len = 5, cap = 0;
    assert_int_equal(buf_append(&d, &len, &cap, 0, "", SIZE_MAX - 2), MCLI_ERR_TOO_LARGE);
    assert_null(d);
    assert_int_equal(len, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(appends_grow_and_stay_nul_terminated),
        cmocka_unit_test(empty_append_allocates_an_empty_string),
        cmocka_unit_test(cap_is_exact_and_refusal_leaves_buffer_unchanged),
        cmocka_unit_test(size_overflow_is_too_large_not_a_wraparound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
