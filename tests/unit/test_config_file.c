/* test_config_file.c - the settings-file parser: both forms, quoting, comments, every rejection
 * with its line number, and the bounded integer parser at its edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/config_file.h"

static cfg_file parse_ok(const char *text)
{
    cfg_file c;
    mcli_err err = {0};
    if (cfg_parse("t.conf", text, strlen(text), &c, &err) != MCLI_OK)
        fail_msg("cfg_parse: %s", err.msg);
    return c;
}

static void parse_fails(const char *text, mcli_status code, const char *needle)
{
    cfg_file c;
    mcli_err err = {0};
    assert_int_equal(cfg_parse("t.conf", text, strlen(text), &c, &err), code);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_null(c.items);
}

static void key_value_form_with_comments_quotes_and_spaces(void **state)
{
    (void)state;
    cfg_file c = parse_ok("# the service\n"
                          "\n"
                          "  port = 8000  \n"
                          "; another comment\n"
                          "host=0.0.0.0\r\n"
                          "models_dir = \"/srv/my models\"\n"
                          "quoted = \"a \\\"b\\\" \\\\ c\"\n"
                          "empty =\n");
    assert_int_equal(c.n, 5);
    assert_string_equal(cfg_get(&c, "port"), "8000");
    assert_string_equal(cfg_get(&c, "host"), "0.0.0.0");
    assert_string_equal(cfg_get(&c, "models_dir"), "/srv/my models");
    assert_string_equal(cfg_get(&c, "quoted"), "a \"b\" \\ c");
    assert_string_equal(cfg_get(&c, "empty"), "");
    assert_null(cfg_get(&c, "missing"));
    assert_int_equal(c.items[0].line, 3);
    assert_int_equal(c.items[2].line, 6);
    cfg_free(&c);
    cfg_free(&c); /* idempotent */
}

static void json_form_turns_numbers_and_booleans_into_text(void **state)
{
    (void)state;
    cfg_file c = parse_ok("  {\"port\": 8001, \"host\": \"localhost\", \"ratio\": 0.5, \"daemon\": true}");
    assert_int_equal(c.n, 4);
    assert_string_equal(cfg_get(&c, "port"), "8001");
    assert_string_equal(cfg_get(&c, "ratio"), "0.5");
    assert_string_equal(cfg_get(&c, "daemon"), "true");
    cfg_free(&c);
}

static void malformed_files_are_rejected_with_their_line(void **state)
{
    (void)state;
    parse_fails("port = 1\nno equals sign\n", MCLI_ERR_FORMAT, "t.conf:2: expected 'key = value'");
    parse_fails("port = 1\nport = 2\n", MCLI_ERR_FORMAT, "t.conf:2: 'port' is set twice (first on line 1)");
    parse_fails("bad key = 1\n", MCLI_ERR_FORMAT, "t.conf:1: key 'bad key'");
    parse_fails(" = 1\n", MCLI_ERR_FORMAT, "t.conf:1: a key must be");
    parse_fails("k = \"open\n", MCLI_ERR_FORMAT, "t.conf:1: unterminated");
    parse_fails("k = \"a\" b\n", MCLI_ERR_FORMAT, "text after the closing quote");
    parse_fails("k = \"\\n\"\n", MCLI_ERR_FORMAT, "may be escaped");
    parse_fails("{\"a\": {\"nested\": 1}}", MCLI_ERR_FORMAT, "string, number or boolean");
    parse_fails("{\"a\": 1, \"a\": 2}", MCLI_ERR_FORMAT, "not valid JSON");
    parse_fails("{\"a\": 1", MCLI_ERR_FORMAT, "not valid JSON");
    char *long_val = malloc(CFG_VALUE_MAX + 16);
    assert_non_null(long_val);
    memcpy(long_val, "k = ", 4);
    memset(long_val + 4, 'v', CFG_VALUE_MAX);
    long_val[4 + CFG_VALUE_MAX] = '\0';
    parse_fails(long_val, MCLI_ERR_FORMAT, "longer than");
    free(long_val);
    char *big = calloc(CFG_MAX_BYTES + 2, 1);
    assert_non_null(big);
    memset(big, '#', CFG_MAX_BYTES + 1);
    parse_fails(big, MCLI_ERR_TOO_LARGE, "larger than");
    free(big);
}

static void embedded_nul_in_a_value_is_rejected(void **state)
{
    (void)state;
    static const char text[] = "k = a\0b\n";
    cfg_file c;
    mcli_err err = {0};
    assert_int_equal(cfg_parse("t.conf", text, sizeof text - 1, &c, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "NUL"));
}

static void unknown_keys_are_named_with_their_line(void **state)
{
    (void)state;
    cfg_file c = parse_ok("port = 1\ncolour = blue\n");
    static const char *const allowed[] = {"port", "host"};
    mcli_err err = {0};
    assert_int_equal(cfg_check_keys(&c, allowed, 2, &err), MCLI_ERR_INVALID_ARG);
    assert_string_equal(err.msg, "t.conf:2: unknown setting 'colour'");
    cfg_free(&c);
}

static void load_reports_a_missing_file_as_not_found(void **state)
{
    (void)state;
    cfg_file c;
    mcli_err err = {0};
    assert_int_equal(cfg_load("/nonexistent/mcli.conf", &c, &err), MCLI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/mcli.conf"));
    char path[] = "/tmp/mcli-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "port = 9\n", 9), 9);
    close(fd);
    assert_int_equal(cfg_load(path, &c, &err), MCLI_OK);
    assert_string_equal(cfg_get(&c, "port"), "9");
    cfg_free(&c);
    unlink(path);
}

static void integer_parser_edges(void **state)
{
    (void)state;
    struct {
        const char *text;
        long long lo, hi;
        mcli_status st;
        long long want;
    } cases[] = {
        {"0", 0, 65535, MCLI_OK, 0},
        {"65535", 0, 65535, MCLI_OK, 65535},
        {"65536", 0, 65535, MCLI_ERR_INVALID_ARG, 0},
        {"-1", 0, 65535, MCLI_ERR_INVALID_ARG, 0},
        {"-5", -10, 10, MCLI_OK, -5},
        {"", 0, 10, MCLI_ERR_INVALID_ARG, 0},
        {" 1", 0, 10, MCLI_ERR_INVALID_ARG, 0},
        {"1 ", 0, 10, MCLI_ERR_INVALID_ARG, 0},
        {"0x10", 0, 100, MCLI_ERR_INVALID_ARG, 0},
        {"007", 0, 100, MCLI_OK, 7},
        {"9223372036854775807", 0, INT64_MAX, MCLI_OK, INT64_MAX},
        {"9223372036854775808", 0, INT64_MAX, MCLI_ERR_INVALID_ARG, 0},
        {"18446744073709551616", 0, INT64_MAX, MCLI_ERR_INVALID_ARG, 0},
        {"+3", 0, 10, MCLI_ERR_INVALID_ARG, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long long v = -99;
        mcli_err err = {0};
        mcli_status st = cfg_parse_int("port", cases[i].text, cases[i].lo, cases[i].hi, &v, &err);
        if (st != cases[i].st)
            fail_msg("'%s': status %d, want %d (%s)", cases[i].text, st, cases[i].st, err.msg);
        if (st == MCLI_OK)
            assert_int_equal(v, cases[i].want);
        else
            assert_non_null(strstr(err.msg, "port"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_value_form_with_comments_quotes_and_spaces),
        cmocka_unit_test(json_form_turns_numbers_and_booleans_into_text),
        cmocka_unit_test(malformed_files_are_rejected_with_their_line),
        cmocka_unit_test(embedded_nul_in_a_value_is_rejected),
        cmocka_unit_test(unknown_keys_are_named_with_their_line),
        cmocka_unit_test(load_reports_a_missing_file_as_not_found),
        cmocka_unit_test(integer_parser_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
