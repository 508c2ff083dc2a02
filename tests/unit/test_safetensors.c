/* Unit tests for formats/safetensors and the weights set: the generated fixtures against the
 * checksums torch computed (tests/fixtures/checkpoints/expected.json), zero-copy vs converted
 * data, name lookup, sharded indexes, and table-driven hostile headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "formats/weights.h"
#include "formats/weights_internal.h"

#define CKPT MCLI_FIXTURES "/checkpoints"

static uint64_t fnv1a64(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001B3ULL;
    }
    return h;
}

/* Checks every tensor of fixture directory `name` against expected.json. */
static void check_fixture(const char *name)
{
    json_error_t jerr;
    json_t *all = json_load_file(CKPT "/expected.json", 0, &jerr);
    assert_non_null(all);
    json_t *exp = json_object_get(all, name);
    assert_non_null(exp);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", CKPT, name);
    mcli_weights *w = NULL;
    mcli_err err;
    mcli_status s = weights_open(dir, &w, &err);
    if (s != MCLI_OK)
        fail_msg("%s: %s", name, err.msg);
    assert_string_equal(weights_format(w), json_string_value(json_object_get(exp, "format")));
    json_t *tensors = json_object_get(exp, "tensors");
    assert_int_equal(weights_count(w), json_object_size(tensors));
    const char *key;
    json_t *e;
    size_t float_bytes = 0;
    json_object_foreach(tensors, key, e)
    {
        const mcli_tensor *t = weights_find(w, key);
        if (!t)
            fail_msg("%s: tensor %s missing", name, key);
        assert_string_equal(mcli_dtype_name(t->file_dtype), json_string_value(json_object_get(e, "dtype")));
        json_t *shape = json_object_get(e, "shape");
        assert_int_equal(t->ndim, json_array_size(shape));
        size_t numel = 1;
        for (int i = 0; i < t->ndim; i++) {
            assert_int_equal(t->shape[i], json_integer_value(json_array_get(shape, (size_t)i)));
            numel *= (size_t)t->shape[i];
        }
        assert_int_equal(t->numel, numel);
        const char *fnv = json_string_value(json_object_get(e, "fnv1a64"));
        if (!fnv) {
            assert_null(t->data);
            continue;
        }
        assert_non_null(t->data);
        float_bytes += numel * 4;
        char got[17];
        snprintf(got, sizeof got, "%016llx", (unsigned long long)fnv1a64(t->data, numel * 4));
        if (strcmp(got, fnv) != 0)
            fail_msg("%s: tensor %s checksum %s, torch says %s", name, key, got, fnv);
        double sum = 0;
        for (size_t i = 0; i < numel; i++)
            sum += t->data[i];
        assert_true(fabs(sum - json_number_value(json_object_get(e, "sum"))) < 1e-6 * (1 + fabs(sum)));
    }
    assert_int_equal(weights_bytes(w), float_bytes);
    weights_free(w);
    json_decref(all);
}

static void f32_file_matches_torch_checksums(void **state)
{
    (void)state;
    check_fixture("bert_st_f32");
    check_fixture("gpt2_st");
}

static void f16_file_is_widened_exactly_like_torch(void **state)
{
    (void)state;
    check_fixture("bert_st_f16");
}

static void bf16_file_is_widened_exactly_like_torch(void **state)
{
    (void)state;
    check_fixture("bert_st_bf16");
}

static void sharded_index_loads_every_shard(void **state)
{
    (void)state;
    check_fixture("bert_st_sharded");
}

static bool points_into_mapping(const mcli_weights *w, const void *p)
{
    for (size_t i = 0; i < w->n_maps; i++) {
        const uint8_t *a = w->maps[i].addr;
        if ((const uint8_t *)p >= a && (const uint8_t *)p < a + w->maps[i].len)
            return true;
    }
    return false;
}

static void f32_is_zero_copy_and_f16_is_converted(void **state)
{
    (void)state;
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open(CKPT "/bert_st_f32", &w, &err), MCLI_OK);
    const mcli_tensor *t = weights_find(w, "bert.embeddings.word_embeddings.weight");
    assert_non_null(t);
    assert_true(points_into_mapping(w, t->data));
    weights_free(w);
    assert_int_equal(weights_open(CKPT "/bert_st_f16", &w, &err), MCLI_OK);
    t = weights_find(w, "bert.embeddings.word_embeddings.weight");
    assert_non_null(t);
    assert_int_equal(t->file_dtype, MCLI_DT_F16);
    assert_false(points_into_mapping(w, t->data));
    assert_null(w->maps[0].addr); /* nothing points into the file: its mapping is released */
    weights_free(w);
}

static void lookup_tries_prefix_and_exact_names(void **state)
{
    (void)state;
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open(CKPT "/bert_st_f32", &w, &err), MCLI_OK);
    const mcli_tensor *a = weights_lookup(w, "bert", "encoder.layer.1.attention.output.LayerNorm.weight");
    assert_non_null(a);
    assert_string_equal(a->name, "bert.encoder.layer.1.attention.output.LayerNorm.weight");
    const mcli_tensor *c = weights_lookup(w, "bert", "classifier.weight");
    assert_non_null(c);
    assert_string_equal(c->name, "classifier.weight");
    assert_null(weights_lookup(w, "bert", "encoder.layer.2.output.dense.weight"));
    assert_null(weights_lookup(w, "bert", "cls.predictions.decoder.weight"));
    weights_free(w);

    assert_int_equal(weights_open(CKPT "/bert_st_bf16", &w, &err), MCLI_OK); /* no prefix in the file */
    a = weights_lookup(w, "bert", "embeddings.LayerNorm.bias");
    assert_non_null(a);
    assert_string_equal(a->name, "embeddings.LayerNorm.bias");
    weights_free(w);

    assert_int_equal(weights_open(CKPT "/gpt2_st", &w, &err), MCLI_OK);
    a = weights_lookup(w, "transformer", "h.1.mlp.c_fc.weight");
    assert_non_null(a);
    assert_int_equal(a->shape[0], 8);
    assert_int_equal(a->shape[1], 32);
    assert_null(weights_lookup(w, "transformer", "lm_head.weight"));
    weights_free(w);
}

/* Builds a weights set holding one 1-element F32 tensor per name. */
static mcli_weights *set_of(const char *const *names, size_t n)
{
    static const float one = 1.0f;
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(wb_new(&w, &err), MCLI_OK);
    int64_t shape[1] = {1};
    for (size_t i = 0; i < n; i++) {
        wb_tensor_desc d = {.name = names[i],
                            .name_len = strlen(names[i]),
                            .dt = MCLI_DT_F32,
                            .ndim = 1,
                            .shape = shape,
                            .src = (const uint8_t *)&one};
        assert_int_equal(wb_add_tensor(w, &d, &err), MCLI_OK);
    }
    assert_int_equal(wb_finish(w, &err), MCLI_OK);
    return w;
}

static void lookup_table_covers_real_checkpoint_spellings(void **state)
{
    (void)state;
    static const char *const names[] = {
        "bert.embeddings.LayerNorm.gamma", /* pytorch-pretrained-bert */
        "bert.encoder.layer.0.output.LayerNorm.beta",
        "cls.predictions.transform.LayerNorm.gamma", /* head without prefix, old spelling */
        "distilbert.transformer.layer.0.ffn.lin1.weight",
        "distilbert.transformer.layer.0.sa_layer_norm.weight",
        "vocab_layer_norm.bias",
        "h.0.ln_1.weight", /* original gpt2: no prefix */
        "transformer.wte.weight",
        "lm_head.weight",
    };
    static const struct {
        const char *prefix, *canonical, *want;
    } cases[] = {
        {"bert", "embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.gamma"},
        {"bert", "encoder.layer.0.output.LayerNorm.bias", "bert.encoder.layer.0.output.LayerNorm.beta"},
        {"bert", "encoder.layer.0.output.LayerNorm.weight", NULL},
        {"bert", "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.gamma"},
        {"distilbert", "transformer.layer.0.ffn.lin1.weight",
         "distilbert.transformer.layer.0.ffn.lin1.weight"},
        {"distilbert", "transformer.layer.0.sa_layer_norm.weight",
         "distilbert.transformer.layer.0.sa_layer_norm.weight"},
        {"distilbert", "vocab_layer_norm.bias", "vocab_layer_norm.bias"},
        {"transformer", "h.0.ln_1.weight", "h.0.ln_1.weight"},
        {"transformer", "wte.weight", "transformer.wte.weight"},
        {"transformer", "lm_head.weight", "lm_head.weight"},
        {"transformer", "h.1.ln_1.weight", NULL},
        {"", "wte.weight", NULL},
        {NULL, "transformer.wte.weight", "transformer.wte.weight"},
        {"bert", "", NULL},
    };
    mcli_weights *w = set_of(names, sizeof names / sizeof *names);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const mcli_tensor *t = weights_lookup(w, cases[i].prefix, cases[i].canonical);
        const char *got = t ? t->name : NULL;
        if ((got == NULL) != (cases[i].want == NULL) || (got && strcmp(got, cases[i].want) != 0))
            fail_msg("lookup(%s, %s) = %s, want %s", cases[i].prefix ? cases[i].prefix : "NULL",
                     cases[i].canonical, got ? got : "NULL", cases[i].want ? cases[i].want : "NULL");
    }
    /* over-long names cannot overflow the lookup's buffers */
    char big[2048];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_null(weights_lookup(w, "bert", big));
    assert_null(weights_lookup(w, big, "wte.weight"));
    assert_null(weights_lookup(NULL, "bert", "x"));
    weights_free(w);
}

static void duplicate_names_are_refused(void **state)
{
    (void)state;
    static const float one = 1.0f;
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(wb_new(&w, &err), MCLI_OK);
    int64_t shape[1] = {1};
    wb_tensor_desc d = {.name = "x",
                        .name_len = 1,
                        .dt = MCLI_DT_F32,
                        .ndim = 1,
                        .shape = shape,
                        .src = (const uint8_t *)&one};
    assert_int_equal(wb_add_tensor(w, &d, &err), MCLI_OK);
    assert_int_equal(wb_add_tensor(w, &d, &err), MCLI_OK);
    assert_int_equal(wb_finish(w, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'x' appears twice"));
    weights_free(w);
}

/* ---- hostile input ---- */

static void expect_open_fails(const char *path, mcli_status code, const char *needle)
{
    mcli_weights *w = (mcli_weights *)(uintptr_t)1;
    mcli_err err;
    mcli_err_clear(&err);
    mcli_status s = weights_open_file(path, &w, &err);
    if (s != code || !strstr(err.msg, needle))
        fail_msg("%s: got %s \"%s\", want %s containing \"%s\"", path, mcli_status_name(s), err.msg,
                 mcli_status_name(code), needle);
    assert_null(w);
}

static void hostile_fixture_files_are_clear_errors(void **state)
{
    (void)state;
    expect_open_fails(CKPT "/hostile/st_giant_header.safetensors", MCLI_ERR_TOO_LARGE,
                      "over the 100 MB limit");
    expect_open_fails(CKPT "/hostile/st_truncated.safetensors", MCLI_ERR_FORMAT, "truncated");
    expect_open_fails(CKPT "/hostile/st_overlap.safetensors", MCLI_ERR_FORMAT, "overlaps");
    expect_open_fails(CKPT "/hostile/st_offset_past_end.safetensors", MCLI_ERR_FORMAT, "past the end");
    expect_open_fails(CKPT "/hostile/st_shape_mismatch.safetensors", MCLI_ERR_FORMAT, "needs 20 bytes");
}

/* Builds a file image: u64 length of hdr, hdr, data_len zero bytes. Caller frees. */
static uint8_t *image(const char *hdr, size_t data_len, uint64_t declared, size_t *len)
{
    size_t h = strlen(hdr);
    *len = 8 + h + data_len;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(declared >> (8 * i));
    memcpy(b + 8, hdr, h);
    return b;
}

typedef struct {
    const char *header;
    size_t data_len;
    int64_t declared; /* -1: the real header length */
    mcli_status want;
    const char *needle;
} header_case;

static void header_table_rejects_every_malformed_case(void **state)
{
    (void)state;
    static const header_case cases[] = {
        {"{}", 0, -1, MCLI_OK, ""},
        {"{\"__metadata__\":{\"format\":\"pt\"}}", 0, -1, MCLI_OK, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, -1, MCLI_OK, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", 0, -1, MCLI_OK, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ", 8, -1, MCLI_OK, ""},
        /* declared length vs the file */
        {"{}", 0, 0, MCLI_ERR_FORMAT, "JSON object"},
        {"{}", 0, 3, MCLI_ERR_FORMAT, "past the end"},
        {"{}", 0, (int64_t)((uint64_t)100 << 20) + 1, MCLI_ERR_TOO_LARGE, "limit"},
        {"{}", 0, INT64_MAX, MCLI_ERR_TOO_LARGE, "limit"},
        {"[1]", 0, -1, MCLI_ERR_FORMAT, "JSON object"},
        {"{\"a\":", 0, -1, MCLI_ERR_FORMAT, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, -1, MCLI_ERR_FORMAT, "duplicate"},
        {"{\"__metadata__\":[1]}", 0, -1, MCLI_ERR_FORMAT, "__metadata__"},
        {"{\"a\":3}", 0, -1, MCLI_ERR_FORMAT, "not an object"},
        {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, -1, MCLI_ERR_UNSUPPORTED,
         "F8_E4M3"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1, MCLI_ERR_FORMAT,
         "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, -1, MCLI_ERR_FORMAT,
         "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, -1,
         MCLI_ERR_UNSUPPORTED, "9 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1024],\"data_offsets\":[0,4]}}", 4, -1,
         MCLI_ERR_FORMAT, "needs"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,1099511627776],"
         "\"data_offsets\":[0,4]}}",
         4, -1, MCLI_ERR_FORMAT, "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, -1, MCLI_ERR_FORMAT,
         "begin <= end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, -1, MCLI_ERR_FORMAT,
         "begin <= end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, -1, MCLI_ERR_FORMAT,
         "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}}", 4, -1,
         MCLI_ERR_FORMAT, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, -1, MCLI_ERR_FORMAT,
         "past the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[100,104]}}", 104, -1, MCLI_ERR_FORMAT,
         "unused bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 200, -1, MCLI_ERR_FORMAT,
         "after the last tensor"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, MCLI_ERR_FORMAT, "empty"},
        {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, MCLI_ERR_FORMAT, "dtype"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const header_case *c = &cases[i];
        size_t len;
        uint64_t declared = c->declared < 0 ? strlen(c->header) : (uint64_t)c->declared;
        uint8_t *b = image(c->header, c->data_len, declared, &len);
        st_header h;
        mcli_err err;
        mcli_err_clear(&err);
        mcli_status s = st_parse_header(b, len, "case", &h, &err);
        if (s != c->want || !strstr(err.msg, c->needle))
            fail_msg("case %zu (%s): got %s \"%s\", want %s containing \"%s\"", i, c->header,
                     mcli_status_name(s), err.msg, mcli_status_name(c->want), c->needle);
        if (s == MCLI_OK)
            st_header_free(&h);
        free(b);
    }
}

static void short_files_are_rejected(void **state)
{
    (void)state;
    uint8_t b[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    st_header h;
    mcli_err err;
    for (size_t n = 0; n <= 8; n++)
        assert_int_equal(st_parse_header(b, n, "short", &h, &err), MCLI_ERR_FORMAT);
}

/* Writes bytes to dir/name. */
static void write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void unaligned_f32_is_copied_and_values_kept(void **state)
{
    (void)state;
    /* A 1-byte U8 tensor first puts the F32 tensor at an odd offset. */
    const char *hdr = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    size_t len;
    uint8_t *b = image(hdr, 9, strlen(hdr), &len);
    float v[2] = {1.5f, -2.25f};
    memcpy(b + 8 + strlen(hdr) + 1, v, sizeof v);
    char dir[] = "/tmp/mcli_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "model.safetensors", b, len);
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open(dir, &w, &err), MCLI_OK);
    const mcli_tensor *t = weights_find(w, "b");
    assert_non_null(t);
    assert_true(((uintptr_t)t->data % 4) == 0);
    assert_true(t->data[0] == 1.5f && t->data[1] == -2.25f);
    assert_null(weights_find(w, "a")->data);
    weights_free(w);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    free(b);
}

static void f16_special_values_convert_exactly(void **state)
{
    (void)state;
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]}}";
    /* 1.0, -2.0, smallest subnormal 2^-24, 65504, +inf, -0 */
    uint16_t h[6] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x8000};
    size_t len;
    uint8_t *b = image(hdr, 12, strlen(hdr), &len);
    memcpy(b + 8 + strlen(hdr), h, sizeof h);
    char dir[] = "/tmp/mcli_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "model.safetensors", b, len);
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open(dir, &w, &err), MCLI_OK);
    const float *d = weights_find(w, "h")->data;
    assert_true(d[0] == 1.0f && d[1] == -2.0f && d[2] == ldexpf(1.0f, -24) && d[3] == 65504.0f);
    assert_true(isinf(d[4]) && d[4] > 0 && d[5] == 0.0f && signbit(d[5]));
    weights_free(w);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    free(b);
}

static void sharded_index_with_path_escape_or_missing_tensor_fails(void **state)
{
    (void)state;
    char dir[] = "/tmp/mcli_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    size_t len;
    uint8_t *b = image(hdr, 4, strlen(hdr), &len);
    write_file(dir, "s1.safetensors", b, len);
    free(b);
    mcli_weights *w = NULL;
    mcli_err err;
    static const struct {
        const char *index;
        const char *needle;
    } cases[] = {
        {"{\"weight_map\":{\"x\":\"../s1.safetensors\"}}", "plain file name"},
        {"{\"weight_map\":{\"x\":\"sub/s1.safetensors\"}}", "plain file name"},
        {"{\"weight_map\":{\"x\":\"s1.safetensors\",\"y\":\"s1.safetensors\"}}", "missing"},
        {"{\"weight_map\":{\"y\":\"s1.safetensors\"}}", "does not list"},
        {"{\"weight_map\":{}}", "weight_map"},
        {"{\"weight_map\":{\"x\":\"nothere.safetensors\"}}", "cannot open"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_file(dir, "model.safetensors.index.json", cases[i].index, strlen(cases[i].index));
        mcli_err_clear(&err);
        mcli_status s = weights_open(dir, &w, &err);
        if (s == MCLI_OK || !strstr(err.msg, cases[i].needle))
            fail_msg("index case %zu: got %s \"%s\"", i, mcli_status_name(s), err.msg);
        assert_null(w);
    }
    const char *ok = "{\"metadata\":{},\"weight_map\":{\"x\":\"s1.safetensors\"}}";
    write_file(dir, "model.safetensors.index.json", ok, strlen(ok));
    assert_int_equal(weights_open(dir, &w, &err), MCLI_OK);
    assert_string_equal(weights_format(w), "safetensors (1 shard)");
    weights_free(w);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/s1.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

static void symlinked_files_as_in_the_hub_cache_load(void **state)
{
    (void)state;
    /* huggingface_hub snapshots are directories of symlinks into a blobs/ folder */
    char dir[] = "/tmp/mcli_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char link[512];
    snprintf(link, sizeof link, "%s/model.safetensors", dir);
    assert_int_equal(symlink(CKPT "/bert_st_f32/model.safetensors", link), 0);
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open(dir, &w, &err), MCLI_OK);
    assert_int_equal(weights_count(w), 42);
    weights_free(w);
    unlink(link);
    /* a dangling link is a clear error, not a crash */
    assert_int_equal(symlink("/nonexistent/blob", link), 0);
    assert_int_equal(weights_open(dir, &w, &err), MCLI_ERR_NOT_FOUND);
    unlink(link);
    rmdir(dir);
}

static void missing_dir_and_empty_dir_are_not_found(void **state)
{
    (void)state;
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open("/nonexistent/mcli", &w, &err), MCLI_ERR_NOT_FOUND);
    char dir[] = "/tmp/mcli_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(weights_open(dir, &w, &err), MCLI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "model.safetensors"));
    assert_null(strstr(err.msg, "other formats"));
    write_file(dir, "tf_model.h5", "x", 1); /* a TensorFlow-only repository */
    assert_int_equal(weights_open(dir, &w, &err), MCLI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "other formats only"));
    char path[512];
    snprintf(path, sizeof path, "%s/tf_model.h5", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(f32_file_matches_torch_checksums),
        cmocka_unit_test(f16_file_is_widened_exactly_like_torch),
        cmocka_unit_test(bf16_file_is_widened_exactly_like_torch),
        cmocka_unit_test(sharded_index_loads_every_shard),
        cmocka_unit_test(f32_is_zero_copy_and_f16_is_converted),
        cmocka_unit_test(lookup_tries_prefix_and_exact_names),
        cmocka_unit_test(lookup_table_covers_real_checkpoint_spellings),
        cmocka_unit_test(duplicate_names_are_refused),
        cmocka_unit_test(hostile_fixture_files_are_clear_errors),
        cmocka_unit_test(header_table_rejects_every_malformed_case),
        cmocka_unit_test(short_files_are_rejected),
        cmocka_unit_test(unaligned_f32_is_copied_and_values_kept),
        cmocka_unit_test(f16_special_values_convert_exactly),
        cmocka_unit_test(sharded_index_with_path_escape_or_missing_tensor_fails),
        cmocka_unit_test(symlinked_files_as_in_the_hub_cache_load),
        cmocka_unit_test(missing_dir_and_empty_dir_are_not_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
