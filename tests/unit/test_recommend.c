/* Unit tests for sys/recommend: the original tiering rule (< 2 GB -> bert-tiny, < 4 GB -> tiny
 * DistilBERT, else distilbert-base-uncased) and its refinements (cgroup limit, memory headroom, disk).
 * Candidates are written out here with the catalog's figures; expected estimates are hand-computed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sys/recommend.h"

/* key, size_mb, layers, hidden, heads, intermediate, ctx, vocab, decoder, min_ram_mb, capability, on_disk */
static const rec_candidate CANDS[] = {
    {"prajjwal1/bert-tiny", 18, 2, 128, 2, 512, 512, 30522, false, 0, 4.5, false},
    {"sshleifer/tiny-distilbert-base-uncased", 1, 2, 2, 2, 2, 512, 30522, false, 2048, 5.5, false},
    {"distilbert-base-uncased", 260, 6, 768, 12, 3072, 512, 30522, false, 4096, 7.0, false},
    {"microsoft/DialoGPT-small", 470, 12, 768, 12, 3072, 1024, 50257, true, -1, 6.5, false},
};
#define N_CANDS (sizeof CANDS / sizeof CANDS[0])

static mcli_sysinfo machine(int64_t total, int64_t avail, int64_t cg_limit, int64_t disk)
{
    mcli_sysinfo s;
    memset(&s, 0, sizeof s);
    s.ram_total_mb = total;
    s.ram_available_mb = avail;
    s.cgroup_mem_limit_mb = cg_limit;
    s.cgroup_mem_usage_mb = cg_limit >= 0 ? 0 : -1;
    s.disk_free_mb = disk;
    s.cpus_online = s.cpus_affinity = 2;
    sysinfo_derive(&s);
    return s;
}

static const char *choose(const mcli_sysinfo *s, rec_result *r)
{
    recommend_choose(CANDS, N_CANDS, s, r, NULL);
    return r->index >= 0 ? CANDS[r->index].key : "(none)";
}

static void under_2gb_is_bert_tiny(void **state)
{
    (void)state;
    rec_result r;
    mcli_sysinfo s = machine(1500, 1400, -1, 100000);
    assert_string_equal(choose(&s, &r), "prajjwal1/bert-tiny");
    assert_true(r.fits);
    assert_int_equal(r.tier_mb, 0);
    s = machine(2047, 2000, -1, 100000);
    assert_string_equal(choose(&s, &r), "prajjwal1/bert-tiny");
}

static void from_2gb_to_4gb_is_tiny_distilbert(void **state)
{
    (void)state;
    rec_result r;
    mcli_sysinfo s = machine(2048, 2000, -1, 100000);
    assert_string_equal(choose(&s, &r), "sshleifer/tiny-distilbert-base-uncased");
    s = machine(4095, 3900, -1, 100000);
    assert_string_equal(choose(&s, &r), "sshleifer/tiny-distilbert-base-uncased");
    assert_int_equal(r.tier_mb, 2048);
}

static void from_4gb_is_distilbert_base(void **state)
{
    (void)state;
    rec_result r;
    mcli_sysinfo s = machine(4096, 4000, -1, 100000);
    assert_string_equal(choose(&s, &r), "distilbert-base-uncased");
    s = machine(65536, 60000, -1, 100000);
    assert_string_equal(choose(&s, &r), "distilbert-base-uncased"); /* decoders are not --auto candidates */
}

static void cgroup_limit_caps_the_tier(void **state)
{
    (void)state;
    rec_result r;
    mcli_sysinfo s = machine(16384, 15000, 1800, 100000);
    assert_string_equal(choose(&s, &r), "prajjwal1/bert-tiny");
    assert_int_equal(r.tier_basis_mb, 1800);
    s = machine(16384, 15000, 3000, 100000);
    assert_string_equal(choose(&s, &r), "sshleifer/tiny-distilbert-base-uncased");
    assert_non_null(strstr(r.reason, "cgroup limit"));
}

static void too_little_available_memory_steps_down(void **state)
{
    (void)state;
    rec_result r;
    /* distilbert-base needs 260 + 40 + 216 = 516 MB, 774 with headroom: not in 600 MB available. */
    mcli_sysinfo s = machine(8192, 600, -1, 100000);
    assert_string_equal(choose(&s, &r), "sshleifer/tiny-distilbert-base-uncased");
    assert_true(r.fits);
    assert_non_null(strstr(r.reason, "do not fit"));
    s = machine(8192, 800, -1, 100000);
    assert_string_equal(choose(&s, &r), "distilbert-base-uncased");
}

static void too_little_disk_steps_down(void **state)
{
    (void)state;
    rec_result r;
    /* distilbert-base needs ceil(260 * 1.1) + 50 = 336 MB of disk. */
    mcli_sysinfo s = machine(8192, 8000, -1, 335);
    assert_string_equal(choose(&s, &r), "sshleifer/tiny-distilbert-base-uncased");
    s = machine(8192, 8000, -1, 336);
    assert_string_equal(choose(&s, &r), "distilbert-base-uncased");
}

static void already_on_disk_needs_no_disk(void **state)
{
    (void)state;
    rec_candidate c = CANDS[2];
    c.on_disk = true;
    mcli_sysinfo s = machine(8192, 8000, -1, 10);
    rec_estimate e;
    recommend_estimate(&c, &s, &e);
    assert_int_equal(e.disk_need_mb, 0);
    assert_true(e.fits_disk);
}

static void nothing_fits_returns_the_smallest_with_a_reason(void **state)
{
    (void)state;
    rec_result r;
    mcli_sysinfo s = machine(64, 30, -1, 100000);
    assert_string_equal(choose(&s, &r), "sshleifer/tiny-distilbert-base-uncased");
    assert_false(r.fits);
    assert_non_null(strstr(r.reason, "nothing fits"));
}

static void no_candidates_is_index_minus_one(void **state)
{
    (void)state;
    rec_result r;
    mcli_sysinfo s = machine(8192, 8000, -1, 1000);
    recommend_choose(&CANDS[3], 1, &s, &r, NULL);
    assert_int_equal(r.index, -1);
}

static void estimates_match_hand_computed_values(void **state)
{
    (void)state;
    mcli_sysinfo s = machine(8192, 8000, -1, 100000);
    rec_estimate e;
    /* bert-tiny: act = 4*8*512*(6*128+512) + 4*8*2*512*512 = 20,971,520 + 16,777,216 B = 36 MiB. */
    recommend_estimate(&CANDS[0], &s, &e);
    assert_int_equal(e.weights_mb, 18);
    assert_int_equal(e.activations_mb, 36);
    assert_int_equal(e.need_mb, 18 + 40 + 36);
    assert_int_equal(e.need_with_headroom_mb, 141);
    /* distilbert-base: 4*8*512*7680 + 4*8*12*512*512 = 125,829,120 + 100,663,296 B = 216 MiB. */
    recommend_estimate(&CANDS[2], &s, &e);
    assert_int_equal(e.activations_mb, 216);
    assert_int_equal(e.need_mb, 260 + 40 + 216);
    /* DialoGPT-small KV cache: 4*4*(2*12*1024*768 + 1024*(6*768+3072) + 50257) B = 408.8 MiB -> 409. */
    recommend_estimate(&CANDS[3], &s, &e);
    assert_int_equal(e.activations_mb, 409);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(under_2gb_is_bert_tiny),
        cmocka_unit_test(from_2gb_to_4gb_is_tiny_distilbert),
        cmocka_unit_test(from_4gb_is_distilbert_base),
        cmocka_unit_test(cgroup_limit_caps_the_tier),
        cmocka_unit_test(too_little_available_memory_steps_down),
        cmocka_unit_test(too_little_disk_steps_down),
        cmocka_unit_test(already_on_disk_needs_no_disk),
        cmocka_unit_test(nothing_fits_returns_the_smallest_with_a_reason),
        cmocka_unit_test(no_candidates_is_index_minus_one),
        cmocka_unit_test(estimates_match_hand_computed_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
