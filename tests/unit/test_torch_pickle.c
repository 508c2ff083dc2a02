/* Unit tests for the PyTorch readers: torch.save zip and legacy checkpoints against the
 * checksums torch computed (expected.json), shared storages, storage offsets, transposed views,
 * old gamma/beta names, and the restricted unpickler on hand-built hostile pickles. */
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
#include <unistd.h>

#include "formats/torch_pickle.h"
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

static bool in_mapping(const mcli_weights *w, const void *p)
{
    for (size_t i = 0; i < w->n_maps; i++)
        if ((const uint8_t *)p >= (const uint8_t *)w->maps[i].addr &&
            (const uint8_t *)p < (const uint8_t *)w->maps[i].addr + w->maps[i].len)
            return true;
    return false;
}

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
    if (weights_open(dir, &w, &err) != MCLI_OK)
        fail_msg("%s: %s", name, err.msg);
    assert_string_equal(weights_format(w), json_string_value(json_object_get(exp, "format")));
    json_t *tensors = json_object_get(exp, "tensors");
    assert_int_equal(weights_count(w), json_object_size(tensors));
    const char *key;
    json_t *e;
    json_object_foreach(tensors, key, e)
    {
        const mcli_tensor *t = weights_find(w, key);
        if (!t)
            fail_msg("%s: tensor %s missing", name, key);
        assert_string_equal(mcli_dtype_name(t->file_dtype), json_string_value(json_object_get(e, "dtype")));
        json_t *shape = json_object_get(e, "shape");
        assert_int_equal(t->ndim, json_array_size(shape));
        for (int i = 0; i < t->ndim; i++)
            assert_int_equal(t->shape[i], json_integer_value(json_array_get(shape, (size_t)i)));
        const char *fnv = json_string_value(json_object_get(e, "fnv1a64"));
        if (!fnv) {
            assert_null(t->data);
            continue;
        }
        json_t *aligned = json_object_get(exp, "data_aligned");
        if (json_is_false(aligned)) /* legacy storages at odd offsets: every tensor converted */
            assert_false(in_mapping(w, t->data));
        char got[17];
        snprintf(got, sizeof got, "%016llx", (unsigned long long)fnv1a64(t->data, t->numel * 4));
        if (strcmp(got, fnv) != 0)
            fail_msg("%s: tensor %s checksum %s, torch says %s", name, key, got, fnv);
    }
    weights_free(w);
    json_decref(all);
}

static void zip_checkpoint_matches_torch_checksums(void **state)
{
    (void)state;
    check_fixture("bert_pt_zip");
}

static void zip_with_renamed_archive_folder_loads(void **state)
{
    (void)state;
    check_fixture("distilbert_pt_zip"); /* folder "renamed_archive/", file pytorch_model.bin */
}

static void legacy_checkpoints_match_torch_checksums(void **state)
{
    (void)state;
    check_fixture("bert_pt_legacy");
    check_fixture("gpt2_pt_legacy");
}

static void other_torch_save_variants_match_torch_checksums(void **state)
{
    (void)state;
    /* pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE), every dtype incl. a
     * transposed F16 view, a zip re-written without alignment padding, a byteorder record */
    check_fixture("variants/zip_protocol4.bin");
    check_fixture("variants/legacy_protocol4.bin");
    check_fixture("variants/zip_dtypes.bin");
    check_fixture("variants/legacy_dtypes.bin");
    check_fixture("variants/zip_python_zipfile.bin");
    check_fixture("variants/zip_byteorder_little.bin");
}

static void sharded_pytorch_index_loads(void **state)
{
    (void)state;
    check_fixture("distilbert_pt_sharded");
}

static void shared_storage_and_views_are_resolved(void **state)
{
    (void)state;
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open(CKPT "/bert_pt_zip", &w, &err), MCLI_OK);
    /* tied decoder: the same storage, mapped in place, so the very same pointer */
    const mcli_tensor *emb = weights_find(w, "bert.embeddings.word_embeddings.weight");
    const mcli_tensor *dec = weights_find(w, "cls.predictions.decoder.weight");
    assert_non_null(emb);
    assert_non_null(dec);
    assert_ptr_equal(emb->data, dec->data);
    assert_true(in_mapping(w, emb->data));
    /* token-type embeddings start 16*8 floats into the storage shared with positions */
    const mcli_tensor *pos = weights_find(w, "bert.embeddings.position_embeddings.weight");
    const mcli_tensor *typ = weights_find(w, "bert.embeddings.token_type_embeddings.weight");
    assert_ptr_equal(typ->data, pos->data + 16 * 8);
    /* the transposed pooler weight is copied into row-major order */
    const mcli_tensor *pool = weights_find(w, "bert.pooler.dense.weight");
    assert_false(in_mapping(w, pool->data));
    weights_free(w);
}

static void meta_open_converts_nothing_and_reports_the_same(void **state)
{
    (void)state;
    static const char *const names[] = {"bert_pt_legacy", "bert_pt_zip", "bert_st_f16",
                                        "distilbert_pt_sharded", "variants/legacy_dtypes.bin"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", CKPT, names[k]);
        mcli_weights *full = NULL, *meta = NULL;
        mcli_err err;
        assert_int_equal(weights_open(dir, &full, &err), MCLI_OK);
        assert_int_equal(weights_open_meta(dir, &meta, &err), MCLI_OK);
        assert_int_equal(weights_count(meta), weights_count(full));
        assert_int_equal(weights_bytes(meta), weights_bytes(full));
        assert_string_equal(weights_format(meta), weights_format(full));
        assert_int_equal(meta->n_bufs, 0);
        for (size_t i = 0; i < weights_count(full); i++) {
            const mcli_tensor *f = weights_at(full, i), *m = weights_find(meta, f->name);
            assert_non_null(m);
            assert_int_equal(m->numel, f->numel);
            assert_int_equal(m->file_dtype, f->file_dtype);
            if (m->data) /* used in place: the same bytes */
                assert_memory_equal(m->data, f->data, f->numel * sizeof(float));
        }
        weights_free(full);
        weights_free(meta);
    }
}

static void tied_tensors_are_recognised_as_one_source(void **state)
{
    (void)state;
    static const char *const files[] = {CKPT "/bert_pt_zip", CKPT "/variants/zip_protocol4.bin",
                                        CKPT "/variants/legacy_protocol4.bin"};
    for (size_t k = 0; k < 3; k++) {
        for (int meta = 0; meta <= 1; meta++) {
            mcli_weights *w = NULL;
            mcli_err err;
            assert_int_equal(meta ? weights_open_meta(files[k], &w, &err) : weights_open(files[k], &w, &err),
                             MCLI_OK);
            const char *a = k == 0 ? "bert.embeddings.word_embeddings.weight" : "emb.weight";
            const char *b = k == 0 ? "cls.predictions.decoder.weight" : "tied.weight";
            assert_true(weights_same_source(w, weights_find(w, a), weights_find(w, b)));
            if (k == 0) /* one storage, different offsets: not the same tensor */
                assert_false(
                    weights_same_source(w, weights_find(w, "bert.embeddings.position_embeddings.weight"),
                                        weights_find(w, "bert.embeddings.token_type_embeddings.weight")));
            else
                assert_false(
                    weights_same_source(w, weights_find(w, "a.weight"), weights_find(w, "emb.weight")));
            weights_free(w);
        }
    }
}

static void legacy_gamma_beta_names_are_found_by_lookup(void **state)
{
    (void)state;
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open(CKPT "/bert_pt_legacy", &w, &err), MCLI_OK);
    const mcli_tensor *g = weights_lookup(w, "bert", "encoder.layer.0.output.LayerNorm.weight");
    assert_non_null(g);
    assert_string_equal(g->name, "bert.encoder.layer.0.output.LayerNorm.gamma");
    const mcli_tensor *b = weights_lookup(w, "bert", "embeddings.LayerNorm.bias");
    assert_non_null(b);
    assert_string_equal(b->name, "bert.embeddings.LayerNorm.beta");
    /* gamma/beta fallbacks only for norm parameters */
    assert_null(weights_lookup(w, "bert", "encoder.layer.0.output.dense.gamma"));
    weights_free(w);
    assert_int_equal(weights_open(CKPT "/gpt2_pt_legacy", &w, &err), MCLI_OK);
    const mcli_tensor *c = weights_lookup(w, "transformer", "h.1.attn.c_attn.weight");
    assert_non_null(c);
    assert_string_equal(c->name, "h.1.attn.c_attn.weight");
    assert_int_equal(c->shape[1], 24);
    weights_free(w);
}

static void expect_file_fails(const char *file, mcli_status code, const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s/hostile/%s", CKPT, file);
    mcli_weights *w = NULL;
    mcli_err err;
    mcli_err_clear(&err);
    mcli_status s = weights_open_file(path, &w, &err);
    if (s != code || !strstr(err.msg, needle))
        fail_msg("%s: got %s \"%s\", want %s containing \"%s\"", file, mcli_status_name(s), err.msg,
                 mcli_status_name(code), needle);
    assert_null(w);
}

static void hostile_checkpoints_are_clear_errors(void **state)
{
    (void)state;
    expect_file_fails("global_os_system.bin", MCLI_ERR_FORMAT, "refusing global 'posix.system'");
    expect_file_fails("global_builtins_eval_legacy.bin", MCLI_ERR_FORMAT,
                      "refusing global '__builtin__.eval'");
    expect_file_fails("zip_deflated.bin", MCLI_ERR_UNSUPPORTED, "is compressed");
    expect_file_fails("zip_byteorder_big.bin", MCLI_ERR_UNSUPPORTED, "little-endian");
    expect_file_fails("zip_short_storage.bin", MCLI_ERR_FORMAT, "has 1276 bytes but its tensors need 1280");
    expect_file_fails("zip_no_data_pkl.bin", MCLI_ERR_FORMAT, "without <folder>/data.pkl");
    expect_file_fails("zip_truncated.bin", MCLI_ERR_FORMAT, "not a readable zip");
    expect_file_fails("legacy_truncated_storage.bin", MCLI_ERR_FORMAT, "runs past the end of the file");
    expect_file_fails("legacy_truncated_pickle.bin", MCLI_ERR_FORMAT, "pickle byte");
    /* a tar archive (torch < 0.4) or anything else: named as unrecognised, not misparsed */
    char path[] = "/tmp/mcli_other_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "ustar\0\0\0\0\0\0\0", 12), 12);
    close(fd);
    mcli_weights *w = NULL;
    mcli_err err;
    assert_int_equal(weights_open_file(path, &w, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "first bytes: 75 73 74 61"));
    unlink(path);
}

/* ---- hand-built pickles ---- */

typedef struct {
    uint8_t b[1 << 16];
    size_t n;
} pk;

static void op(pk *p, uint8_t c)
{
    p->b[p->n++] = c;
}
static void raw(pk *p, const void *d, size_t n)
{
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void u32(pk *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        op(p, (uint8_t)(v >> (8 * i)));
}
static void str(pk *p, const char *s)
{
    op(p, 'X');
    u32(p, (uint32_t)strlen(s));
    raw(p, s, strlen(s));
}
static void int1(pk *p, int v)
{
    op(p, 'K');
    op(p, (uint8_t)v);
}
static void bin_int(pk *p, int32_t v)
{
    op(p, 'J');
    u32(p, (uint32_t)v);
}
static void glob(pk *p, const char *mod, const char *name)
{
    op(p, 'c');
    raw(p, mod, strlen(mod));
    op(p, '\n');
    raw(p, name, strlen(name));
    op(p, '\n');
}
static void proto(pk *p)
{
    op(p, 0x80);
    op(p, 2);
}

/* Appends ('storage', FloatStorage, key, 'cpu', numel) BINPERSID. */
static void persid(pk *p, const char *key, int numel)
{
    op(p, '(');
    str(p, "storage");
    glob(p, "torch", "FloatStorage");
    str(p, key);
    str(p, "cpu");
    bin_int(p, numel);
    op(p, 't');
    op(p, 'Q');
}

/* Appends _rebuild_tensor_v2(storage, offset, (d0, d1), (s0, s1), False, OrderedDict()). */
static void tensor2d(pk *p, const char *key, int numel, int offset, int d0, int d1, int s0, int s1)
{
    glob(p, "torch._utils", "_rebuild_tensor_v2");
    op(p, '(');
    persid(p, key, numel);
    bin_int(p, offset);
    bin_int(p, d0);
    bin_int(p, d1);
    op(p, 0x86);
    bin_int(p, s0);
    bin_int(p, s1);
    op(p, 0x86);
    op(p, 0x89);
    glob(p, "collections", "OrderedDict");
    op(p, ')');
    op(p, 'R');
    op(p, 't');
    op(p, 'R');
}

static mcli_status parse(const pk *p, tp_state_dict *sd, mcli_err *err)
{
    size_t used = 0;
    mcli_err_clear(err);
    return tp_parse_state_dict(p->b, p->n, "test", &used, sd, err);
}

static void expect_pickle_fails(const pk *p, mcli_status code, const char *needle)
{
    tp_state_dict sd;
    mcli_err err;
    mcli_status s = parse(p, &sd, &err);
    if (s != code || !strstr(err.msg, needle))
        fail_msg("got %s \"%s\", want %s containing \"%s\"", mcli_status_name(s), err.msg,
                 mcli_status_name(code), needle);
}

static void handmade_state_dict_gives_shapes_strides_and_storages(void **state)
{
    (void)state;
    static pk p;
    p.n = 0;
    proto(&p);
    glob(&p, "collections", "OrderedDict");
    op(&p, ')');
    op(&p, 'R');
    op(&p, '(');
    str(&p, "a");
    tensor2d(&p, "0", 12, 0, 3, 4, 4, 1);
    str(&p, "a_t");
    tensor2d(&p, "0", 12, 0, 4, 3, 1, 4);
    str(&p, "b");
    tensor2d(&p, "1", 6, 2, 2, 2, 2, 1);
    str(&p, "not_a_tensor");
    int1(&p, 7);
    op(&p, 'u');
    op(&p, '}'); /* BUILD state, as torch writes _metadata */
    op(&p, 'b');
    op(&p, '.');
    tp_state_dict sd;
    mcli_err err;
    assert_int_equal(parse(&p, &sd, &err), MCLI_OK);
    assert_int_equal(sd.n_tensors, 3);
    assert_int_equal(sd.n_storages, 2);
    assert_int_equal(sd.n_skipped, 1);
    assert_string_equal(sd.tensors[1].name, "a_t");
    assert_int_equal(sd.tensors[1].shape[0], 4);
    assert_int_equal(sd.tensors[1].stride[1], 4);
    assert_int_equal(sd.tensors[0].storage, sd.tensors[1].storage);
    assert_int_equal(sd.tensors[2].offset, 2);
    assert_int_equal(sd.storages[sd.tensors[2].storage].numel, 6);

    /* feed it real data and check the transposed copy */
    float s0[12], s1[6];
    for (int i = 0; i < 12; i++)
        s0[i] = (float)i;
    for (int i = 0; i < 6; i++)
        s1[i] = 100.0f + (float)i;
    sd.storages[sd.tensors[0].storage].data = (const uint8_t *)s0;
    sd.storages[sd.tensors[2].storage].data = (const uint8_t *)s1;
    mcli_weights *w = NULL;
    assert_int_equal(wb_new(&w, &err), MCLI_OK);
    assert_int_equal(tp_add_tensors(w, &sd, "test", &err), MCLI_OK);
    assert_int_equal(wb_finish(w, &err), MCLI_OK);
    const mcli_tensor *at = weights_find(w, "a_t");
    /* a_t[i][j] = a[j][i] = 4j + i */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            assert_true(at->data[i * 3 + j] == (float)(4 * j + i));
    assert_ptr_equal(weights_find(w, "a")->data, s0);
    const float *b = weights_find(w, "b")->data;
    assert_true(b[0] == 102.0f && b[3] == 105.0f);
    weights_free(w);
    tp_state_dict_free(&sd);
}

static void foreign_globals_are_refused_by_name(void **state)
{
    (void)state;
    static pk p;
    p.n = 0;
    proto(&p);
    glob(&p, "os", "system");
    str(&p, "echo pwned");
    op(&p, 0x85);
    op(&p, 'R');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "refusing global 'os.system'");

    p.n = 0; /* STACK_GLOBAL (protocol 4) path */
    op(&p, 0x80);
    op(&p, 4);
    str(&p, "builtins");
    str(&p, "eval");
    op(&p, 0x93);
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "refusing global 'builtins.eval'");

    p.n = 0; /* a lookalike module */
    proto(&p);
    glob(&p, "torch._utils", "_rebuild_tensor_v2x");
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "refusing global 'torch._utils._rebuild_tensor_v2x'");

    p.n = 0; /* an allowed type is still not callable */
    proto(&p);
    glob(&p, "torch", "FloatStorage");
    op(&p, ')');
    op(&p, 'R');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "REDUCE on a storage type");
}

static void nested_training_checkpoint_is_unsupported_not_empty(void **state)
{
    (void)state;
    static pk p;
    p.n = 0; /* {"model": {"w": tensor}, "epoch": 3} */
    proto(&p);
    op(&p, '}');
    op(&p, '(');
    str(&p, "model");
    op(&p, '}');
    str(&p, "w");
    tensor2d(&p, "0", 4, 0, 2, 2, 2, 1);
    op(&p, 's');
    str(&p, "epoch");
    int1(&p, 3);
    op(&p, 'u');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_UNSUPPORTED, "no tensors at its top level");
}

static void memo_stack_and_mark_abuse_are_bounded(void **state)
{
    (void)state;
    static pk p;
    p.n = 0;
    proto(&p);
    op(&p, 'h');
    op(&p, 9);
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "memo index 9 was never stored");

    p.n = 0;
    proto(&p);
    op(&p, '}');
    op(&p, 'r');
    u32(&p, 0xffffffffu);
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_TOO_LARGE, "memo index");

    p.n = 0; /* 5 bytes must not buy a sparse memo of millions of slots */
    proto(&p);
    op(&p, '}');
    op(&p, 'r');
    u32(&p, 1000000u);
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "skips ahead");

    p.n = 0;
    proto(&p);
    for (int i = 0; i < 5000; i++)
        op(&p, '(');
    expect_pickle_fails(&p, MCLI_ERR_TOO_LARGE, "nested MARKs");

    /* a list containing itself, appended 1000 times: no recursion anywhere, so no blow-up */
    p.n = 0;
    proto(&p);
    op(&p, ']');
    op(&p, 'q');
    op(&p, 0);
    for (int i = 0; i < 1000; i++) {
        op(&p, 'h');
        op(&p, 0);
        op(&p, 'a');
    }
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "not a state dict");
}

static void huge_stacks_are_refused(void **state)
{
    (void)state;
    size_t n = (1u << 20) + 16;
    uint8_t *b = malloc(n + 3);
    b[0] = 0x80;
    b[1] = 2;
    memset(b + 2, ']', n);
    b[n + 2] = '.';
    tp_state_dict sd;
    mcli_err err;
    size_t used;
    assert_int_equal(tp_parse_state_dict(b, n + 3, "deep", &used, &sd, &err), MCLI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "stack"));
    free(b);
}

static void malformed_opcodes_and_truncation_are_errors(void **state)
{
    (void)state;
    static pk p;
    p.n = 0;
    proto(&p);
    op(&p, '}');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "without STOP");

    p.n = 0;
    proto(&p);
    op(&p, 'X');
    u32(&p, 1000);
    raw(&p, "abc", 3);
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "past the end");

    p.n = 0;
    proto(&p);
    op(&p, 'i'); /* INST: not something torch.save writes */
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "opcode 0x69");

    p.n = 0;
    proto(&p);
    op(&p, '}');
    op(&p, '}');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "values left on the stack");

    p.n = 0;
    proto(&p);
    op(&p, 'u');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "without MARK");

    p.n = 0;
    op(&p, 0x80);
    op(&p, 9);
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "protocol");
}

static void tensor_views_outside_their_storage_are_refused(void **state)
{
    (void)state;
    static pk p;
    /* 3x4 view at offset 1 needs 13 elements of a 12-element storage */
    p.n = 0;
    proto(&p);
    op(&p, '}');
    str(&p, "w");
    tensor2d(&p, "0", 12, 1, 3, 4, 4, 1);
    op(&p, 's');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "past the end of its storage");

    p.n = 0; /* negative stride */
    proto(&p);
    op(&p, '}');
    str(&p, "w");
    tensor2d(&p, "0", 12, 0, 3, 4, -4, 1);
    op(&p, 's');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "negative");

    p.n = 0; /* a key that would escape the archive folder */
    proto(&p);
    op(&p, '}');
    str(&p, "w");
    tensor2d(&p, "../0", 12, 0, 3, 4, 4, 1);
    op(&p, 's');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "storage key");

    p.n = 0; /* one key, two sizes */
    proto(&p);
    op(&p, '}');
    op(&p, '(');
    str(&p, "w");
    tensor2d(&p, "0", 12, 0, 3, 4, 4, 1);
    str(&p, "v");
    tensor2d(&p, "0", 100, 0, 3, 4, 4, 1);
    op(&p, 'u');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "declared twice");

    p.n = 0; /* stride-0 expansion to 2^62 elements: refused before anything is allocated */
    proto(&p);
    op(&p, '}');
    str(&p, "w");
    tensor2d(&p, "0", 12, 0, 0x7fffffff, 0x7fffffff, 0, 0);
    op(&p, 's');
    op(&p, '.');
    expect_pickle_fails(&p, MCLI_ERR_FORMAT, "more elements than its storage");
}

/* Writes a legacy-format file by hand: the five pickles, then one storage of the floats 1..6,
 * viewed as a contiguous (2, 3) tensor or as its transpose (3, 2). The tensor name's length
 * moves the storage bytes to an aligned or an odd file offset, returned. */
static size_t build_legacy(pk *p, size_t name_len, bool transposed)
{
    static const uint8_t magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    char name[64];
    memset(name, 'w', name_len);
    name[name_len] = '\0';
    p->n = 0;
    proto(p);
    op(p, 0x8a);
    op(p, 10);
    raw(p, magic, 10);
    op(p, '.');
    proto(p);
    op(p, 'M');
    op(p, 1001 & 0xff);
    op(p, 1001 >> 8);
    op(p, '.');
    proto(p);
    op(p, '}');
    str(p, "little_endian");
    op(p, 0x88);
    op(p, 's');
    op(p, '.');
    proto(p);
    op(p, '}');
    str(p, name);
    if (transposed)
        tensor2d(p, "k", 6, 0, 3, 2, 1, 3);
    else
        tensor2d(p, "k", 6, 0, 2, 3, 3, 1);
    op(p, 's');
    op(p, '.');
    proto(p);
    op(p, ']');
    str(p, "k");
    op(p, 'a');
    op(p, '.');
    uint8_t count[8] = {6, 0, 0, 0, 0, 0, 0, 0};
    raw(p, count, 8);
    size_t at = p->n;
    float v[6] = {1, 2, 3, 4, 5, 6};
    raw(p, v, sizeof v);
    return at;
}

static void write_tmp(const pk *p, size_t n, char *path)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p->b, 1, n, f), n);
    fclose(f);
}

static void legacy_built_by_hand_loads_at_any_alignment(void **state)
{
    (void)state;
    static pk p;
    bool seen_aligned = false, seen_odd = false;
    for (size_t len = 1; len <= 8; len++) {
        for (int transposed = 0; transposed <= 1; transposed++) {
            size_t at = build_legacy(&p, len, transposed);
            char path[] = "/tmp/mcli_legacy_XXXXXX";
            write_tmp(&p, p.n, path);
            mcli_weights *w = NULL;
            mcli_err err;
            if (weights_open_file(path, &w, &err) != MCLI_OK)
                fail_msg("name length %zu: %s", len, err.msg);
            const mcli_tensor *t = weights_at(w, 0);
            static const float plain[6] = {1, 2, 3, 4, 5, 6};
            static const float trans[6] = {1, 4, 2, 5, 3, 6}; /* rows (1,4), (2,5), (3,6) */
            assert_int_equal(t->shape[0], transposed ? 3 : 2);
            assert_memory_equal(t->data, transposed ? trans : plain, sizeof plain);
            /* In place exactly when contiguous and aligned; otherwise converted and the file
             * mapping released. */
            bool in_place = !transposed && at % 4 == 0;
            assert_int_equal(in_mapping(w, t->data), in_place);
            if (!in_place)
                assert_null(w->maps[0].addr);
            seen_aligned |= at % 4 == 0;
            seen_odd |= at % 4 != 0;
            weights_free(w);
            unlink(path);

            /* cut inside the storage: a clear error */
            char cut[] = "/tmp/mcli_legacy_XXXXXX";
            write_tmp(&p, p.n - 1, cut);
            mcli_err_clear(&err);
            assert_int_equal(weights_open_file(cut, &w, &err), MCLI_ERR_FORMAT);
            assert_non_null(strstr(err.msg, "past the end of the file"));
            unlink(cut);
        }
    }
    assert_true(seen_aligned && seen_odd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zip_checkpoint_matches_torch_checksums),
        cmocka_unit_test(zip_with_renamed_archive_folder_loads),
        cmocka_unit_test(legacy_checkpoints_match_torch_checksums),
        cmocka_unit_test(sharded_pytorch_index_loads),
        cmocka_unit_test(other_torch_save_variants_match_torch_checksums),
        cmocka_unit_test(shared_storage_and_views_are_resolved),
        cmocka_unit_test(meta_open_converts_nothing_and_reports_the_same),
        cmocka_unit_test(tied_tensors_are_recognised_as_one_source),
        cmocka_unit_test(legacy_gamma_beta_names_are_found_by_lookup),
        cmocka_unit_test(hostile_checkpoints_are_clear_errors),
        cmocka_unit_test(handmade_state_dict_gives_shapes_strides_and_storages),
        cmocka_unit_test(foreign_globals_are_refused_by_name),
        cmocka_unit_test(nested_training_checkpoint_is_unsupported_not_empty),
        cmocka_unit_test(memo_stack_and_mark_abuse_are_bounded),
        cmocka_unit_test(huge_stacks_are_refused),
        cmocka_unit_test(malformed_opcodes_and_truncation_are_errors),
        cmocka_unit_test(tensor_views_outside_their_storage_are_refused),
        cmocka_unit_test(legacy_built_by_hand_loads_at_any_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
