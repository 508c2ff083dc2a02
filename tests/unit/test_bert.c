/* test_bert.c - BERT and DistilBERT parity with a PyTorch reference.
 *
 * tests/fixtures/gen/gen_encoder_ref.py writes tiny random-weight model directories and the
 * outputs of a torch forward pass that follows transformers' modeling files, computed on a
 * PADDED batch with attention masks (reference.json, version tag checked below). Here the same
 * token ids go through engine_load + engine_embed / engine_classify / engine_mlm_logits /
 * engine_fill_mask, and every float must agree within 1e-4 absolute; fill-mask top-k ids must be
 * identical. Also: heads a model lacks are MCLI_ERR_UNSUPPORTED, bad inputs are rejected, and a
 * batch bigger than one forward chunk gives the same answers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <unistd.h>

#include "engine/bert.h"
#include "engine/engine.h"

#define REF_VERSION "encoder-ref-v1"
#define TOL 1e-4

typedef struct {
    mcli_model *m;
    json_t *ref;
    mcli_seq *seqs;   /* the reference batch */
    int32_t *ids;     /* storage of seqs */
    int32_t *types;
    size_t n;
    int H;
} fixture;

static void fixture_path(char *buf, size_t cap, const char *model, const char *file)
{
    snprintf(buf, cap, "%s/encoders/%s%s%s", MCLI_FIXTURES, model, file ? "/" : "", file ? file : "");
}

/* Copies a JSON array of ints into dst; returns its length. */
static size_t json_ints(json_t *a, int32_t *dst)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) dst[i] = (int32_t)json_integer_value(v);
    return json_array_size(a);
}

static fixture *fixture_open_threads(const char *model, int n_threads)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char path[512];
    fixture_path(path, sizeof path, model, "reference.json");
    json_error_t jerr;
    f->ref = json_load_file(path, 0, &jerr);
    if (!f->ref)
        fail_msg("cannot read %s: %s (regenerate with tests/fixtures/gen/gen_encoder_ref.py)", path, jerr.text);
    assert_string_equal(json_string_value(json_object_get(f->ref, "version")), REF_VERSION);
    fixture_path(path, sizeof path, model, NULL);
    mcli_err err = {0};
    mcli_engine_opts opts = {.n_threads = n_threads};
    if (engine_load(path, &opts, &f->m, &err) != MCLI_OK)
        fail_msg("engine_load(%s): %s", path, err.msg);
    f->H = engine_info(f->m)->config->hidden_size;
    json_t *ids = json_object_get(f->ref, "ids"), *types = json_object_get(f->ref, "type_ids");
    f->n = json_array_size(ids);
    f->seqs = calloc(f->n, sizeof *f->seqs);
    f->ids = calloc(f->n * 64, sizeof *f->ids);
    f->types = calloc(f->n * 64, sizeof *f->types);
    assert_true(f->seqs && f->ids && f->types);
    for (size_t i = 0; i < f->n; i++) {
        json_t *row = json_array_get(ids, i);
        assert_true(json_array_size(row) <= 64);
        f->seqs[i].ids = f->ids + i * 64;
        f->seqs[i].len = json_ints(row, f->ids + i * 64);
        if (json_is_array(types)) {
            json_ints(json_array_get(types, i), f->types + i * 64);
            f->seqs[i].type_ids = f->types + i * 64;
        }
    }
    return f;
}

static fixture *fixture_open(const char *model)
{
    return fixture_open_threads(model, 1);
}

static void fixture_close(fixture *f)
{
    engine_free(f->m);
    json_decref(f->ref);
    free(f->seqs);
    free(f->ids);
    free(f->types);
    free(f);
}

/* Asserts got[0..n) matches the JSON float array want (flattened) within TOL. */
static void expect_close(const float *got, json_t *want, size_t n, const char *what)
{
    assert_int_equal(json_array_size(want), n);
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - json_number_value(json_array_get(want, i)));
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    if (getenv("MCLI_TEST_VERBOSE"))
        fprintf(stderr, "%s: worst abs diff %.3g over %zu values\n", what, worst, n);
    if (!(worst <= TOL))
        fail_msg("%s: element %zu differs by %g (got %.7g, want %.7g)", what, at, worst, got[at],
                 json_number_value(json_array_get(want, at)));
}

static void check_embeddings(fixture *f)
{
    mcli_err err = {0};
    size_t total = 0;
    for (size_t i = 0; i < f->n; i++)
        total += f->seqs[i].len;
    float *out = malloc(total * (size_t)f->H * sizeof *out);
    assert_non_null(out);
    /* last hidden state of the whole padded batch, unpadded rows */
    assert_int_equal(engine_embed(f->m, f->seqs, f->n, MCLI_POOL_NONE, false, out, &err), MCLI_OK);
    json_t *hs = json_object_get(f->ref, "hidden_states");
    size_t off = 0;
    for (size_t i = 0; i < f->n; i++) {
        char what[64];
        snprintf(what, sizeof what, "hidden state of input %zu", i);
        expect_close(out + off, json_array_get(hs, i), f->seqs[i].len * (size_t)f->H, what);
        off += f->seqs[i].len * (size_t)f->H;
    }
    struct {
        mcli_pooling pool;
        bool norm;
        const char *key;
    } cases[] = {{MCLI_POOL_CLS, false, "cls"},
                 {MCLI_POOL_MEAN, false, "mean"},
                 {MCLI_POOL_MEAN, true, "mean_normalized"},
                 {MCLI_POOL_CLS, true, "cls_normalized"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(engine_embed(f->m, f->seqs, f->n, cases[c].pool, cases[c].norm, out, &err), MCLI_OK);
        json_t *want = json_object_get(f->ref, cases[c].key);
        for (size_t i = 0; i < f->n; i++)
            expect_close(out + i * (size_t)f->H, json_array_get(want, i), (size_t)f->H, cases[c].key);
    }
    free(out);
}

static void check_classify(fixture *f)
{
    mcli_err err = {0};
    json_t *logits_ref = json_object_get(f->ref, "logits");
    const mcli_model_info *info = engine_info(f->m);
    if (!logits_ref) {
        assert_false(info->tasks & MCLI_TASK_CLASSIFY);
        float dummy[16];
        assert_int_equal(engine_classify(f->m, f->seqs, 1, dummy, NULL, &err), MCLI_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "has no trained classification head; it does embeddings"));
        return;
    }
    assert_true(info->tasks & MCLI_TASK_CLASSIFY);
    int nl = info->config->n_labels;
    json_t *labels = json_object_get(f->ref, "labels");
    assert_int_equal(nl, json_array_size(labels));
    for (int i = 0; i < nl; i++)
        assert_string_equal(info->config->labels[i], json_string_value(json_array_get(labels, (size_t)i)));
    assert_int_equal(info->config->multi_label, json_is_true(json_object_get(f->ref, "multi_label")));
    float *logits = malloc(f->n * (size_t)nl * sizeof *logits), *probs = malloc(f->n * (size_t)nl * sizeof *probs);
    assert_true(logits && probs);
    assert_int_equal(engine_classify(f->m, f->seqs, f->n, logits, probs, &err), MCLI_OK);
    for (size_t i = 0; i < f->n; i++) {
        expect_close(logits + i * nl, json_array_get(logits_ref, i), (size_t)nl, "logits");
        expect_close(probs + i * nl, json_array_get(json_object_get(f->ref, "probs"), i), (size_t)nl, "probs");
    }
    free(logits);
    free(probs);
}

static void check_mlm(fixture *f)
{
    mcli_err err = {0};
    json_t *mlm = json_object_get(f->ref, "mlm");
    const mcli_model_info *info = engine_info(f->m);
    if (!mlm) {
        assert_false(info->tasks & MCLI_TASK_FILL_MASK);
        size_t pos = 1;
        float dummy[1];
        assert_int_equal(engine_mlm_logits(f->m, &f->seqs[0], &pos, 1, dummy, &err), MCLI_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "has no trained masked-LM (fill-mask) head"));
        return;
    }
    assert_true(info->tasks & MCLI_TASK_FILL_MASK);
    const int V = info->config->vocab_size;
    size_t k;
    json_t *c;
    json_array_foreach(mlm, k, c) {
        int32_t ids[64];
        size_t pos[8];
        mcli_seq seq = {.ids = ids, .len = json_ints(json_object_get(c, "ids"), ids)};
        json_t *pj = json_object_get(c, "positions");
        size_t np = json_array_size(pj);
        for (size_t i = 0; i < np; i++)
            pos[i] = (size_t)json_integer_value(json_array_get(pj, i));
        float *logits = malloc(np * (size_t)V * sizeof *logits);
        assert_non_null(logits);
        assert_int_equal(engine_mlm_logits(f->m, &seq, pos, np, logits, &err), MCLI_OK);
        for (size_t i = 0; i < np; i++)
            expect_close(logits + i * V, json_array_get(json_object_get(c, "logits"), i), (size_t)V, "mlm logits");
        free(logits);
        /* top-5 through the fill-mask helper: same ids in the same order, same scores */
        mcli_fill_pred *preds = NULL;
        size_t n_masks = 0;
        assert_int_equal(engine_fill_mask(f->m, &seq, 5, &preds, &n_masks, &err), MCLI_OK);
        assert_int_equal(n_masks, np);
        json_t *top = json_object_get(c, "top_ids"), *scores = json_object_get(c, "top_scores");
        for (int i = 0; i < 5; i++) {
            assert_int_equal(preds[i].token_id, json_integer_value(json_array_get(top, (size_t)i)));
            assert_true(fabs(preds[i].score - json_number_value(json_array_get(scores, (size_t)i))) < TOL);
        }
        free(preds);
        /* several positions, in increasing order (last layer for those rows only) and reversed
         * (every row computed): the mask rows still match torch, the other row agrees */
        size_t two[2] = {1, pos[0]}, rev[2] = {pos[0], 1};
        float *a = malloc(2 * (size_t)V * sizeof *a), *r = malloc(2 * (size_t)V * sizeof *r);
        assert_true(a && r && pos[0] > 1);
        assert_int_equal(engine_mlm_logits(f->m, &seq, two, 2, a, &err), MCLI_OK);
        assert_int_equal(engine_mlm_logits(f->m, &seq, rev, 2, r, &err), MCLI_OK);
        expect_close(a + V, json_array_get(json_object_get(c, "logits"), 0), (size_t)V, "mlm logits, 2 rows");
        expect_close(r, json_array_get(json_object_get(c, "logits"), 0), (size_t)V, "mlm logits, reversed");
        for (int v = 0; v < V; v++)
            assert_true(fabsf(a[v] - r[V + v]) < 1e-5f);
        free(a);
        free(r);
    }
}

static void check_info(fixture *f)
{
    const mcli_model_info *info = engine_info(f->m);
    assert_int_equal(info->n_params, json_integer_value(json_object_get(f->ref, "n_params")));
    assert_int_equal(info->weight_bytes, 4 * (size_t)info->n_params);
    unsigned want = 0;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(f->ref, "tasks"), i, t) {
        const char *s = json_string_value(t);
        want |= strcmp(s, "embed") == 0 ? MCLI_TASK_EMBED : strcmp(s, "classify") == 0 ? MCLI_TASK_CLASSIFY : MCLI_TASK_FILL_MASK;
    }
    assert_int_equal(info->tasks, want);
    assert_string_equal(info->weights_format, "safetensors");
}

static void run_model(const char *name)
{
    fixture *f = fixture_open(name);
    check_info(f);
    check_embeddings(f);
    check_classify(f);
    check_mlm(f);
    fixture_close(f);
}

static void bert_classifier_matches_torch(void **state)
{
    (void)state;
    run_model("bert_cls");
}

static void bert_multilabel_gelu_new_uses_sigmoid_and_matches_torch(void **state)
{
    (void)state;
    run_model("bert_multilabel");
}

static void bert_masked_lm_with_tied_decoder_matches_torch(void **state)
{
    (void)state;
    run_model("bert_mlm");
}

static void bare_bert_model_without_prefix_relu_matches_torch(void **state)
{
    (void)state;
    run_model("bert_base");
}

static void distilbert_classifier_matches_torch(void **state)
{
    (void)state;
    run_model("distilbert_cls");
}

static void distilbert_mlm_with_computed_sinusoidal_positions_matches_torch(void **state)
{
    (void)state;
    run_model("distilbert_mlm");
}

/* 90 copies of the maximum-length sequence (1440 tokens) span two forward chunks. */
static void batch_larger_than_one_chunk_matches_torch(void **state)
{
    (void)state;
    fixture *f = fixture_open("bert_cls");
    const size_t N = 90, H = (size_t)f->H;
    size_t imax = 4; /* the max-length sequence in the reference batch */
    assert_int_equal(f->seqs[imax].len, 16);
    assert_true(N * 16 > BERT_CHUNK_TOKENS);
    mcli_seq *many = malloc(N * sizeof *many);
    float *out = malloc(N * H * sizeof *out);
    float *logits = malloc(N * 3 * sizeof *logits);
    assert_true(many && out && logits);
    for (size_t i = 0; i < N; i++)
        many[i] = f->seqs[i % 7 == 3 ? 0 : imax]; /* mostly max length, some short ones */
    mcli_err err = {0};
    assert_int_equal(engine_embed(f->m, many, N, MCLI_POOL_MEAN, false, out, &err), MCLI_OK);
    assert_int_equal(engine_classify(f->m, many, N, logits, NULL, &err), MCLI_OK);
    json_t *mean = json_object_get(f->ref, "mean"), *lref = json_object_get(f->ref, "logits");
    for (size_t i = 0; i < N; i++) {
        size_t r = i % 7 == 3 ? 0 : imax;
        expect_close(out + i * H, json_array_get(mean, r), H, "chunked mean");
        expect_close(logits + i * 3, json_array_get(lref, r), 3, "chunked logits");
    }
    free(many);
    free(out);
    free(logits);
    fixture_close(f);
}

static void bad_inputs_are_rejected_with_clear_errors(void **state)
{
    (void)state;
    fixture *f = fixture_open("bert_cls");
    mcli_err err = {0};
    float out[64 * 64];
    int32_t ids[17] = {2};
    for (int i = 1; i < 17; i++)
        ids[i] = 5;
    mcli_seq too_long = {.ids = ids, .len = 17};
    assert_int_equal(engine_embed(f->m, &too_long, 1, MCLI_POOL_CLS, false, out, &err), MCLI_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "at most 16"));
    mcli_seq empty = {.ids = ids, .len = 0};
    assert_int_equal(engine_embed(f->m, &empty, 1, MCLI_POOL_CLS, false, out, &err), MCLI_ERR_INVALID_ARG);
    assert_int_equal(engine_embed(f->m, f->seqs, 0, MCLI_POOL_CLS, false, out, &err), MCLI_ERR_INVALID_ARG);
    int32_t bad[3] = {2, 100000, 3};
    mcli_seq oov = {.ids = bad, .len = 3};
    assert_int_equal(engine_classify(f->m, &oov, 1, out, NULL, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    int32_t good[3] = {2, 5, 3}, types[3] = {0, 2, 0};
    mcli_seq badtype = {.ids = good, .type_ids = types, .len = 3};
    assert_int_equal(engine_embed(f->m, &badtype, 1, MCLI_POOL_CLS, false, out, &err), MCLI_ERR_INVALID_ARG);
    fixture_close(f);

    f = fixture_open("bert_mlm");
    size_t pos = 4;
    assert_int_equal(f->seqs[2].len, 4); /* [CLS] a dog [SEP] */
    assert_int_equal(engine_mlm_logits(f->m, &f->seqs[2], &pos, 1, out, &err), MCLI_ERR_INVALID_ARG);
    mcli_fill_pred *preds = NULL;
    size_t nm = 0;
    assert_int_equal(engine_fill_mask(f->m, &f->seqs[0], 5, &preds, &nm, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "no mask token"));
    assert_null(preds);
    fixture_close(f);
}

/* A copy of the bert_cls directory whose config.json has one field replaced (JSON text patch);
 * returns the directory (mkdtemp) for engine_load; rm_dir removes it. */
static void make_variant(char *dir, size_t cap, const char *from, const char *to)
{
    snprintf(dir, cap, "/tmp/mcli-test-bert-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char src[512], dst[600];
    const char *files[] = {"model.safetensors", "vocab.txt", "tokenizer_config.json"};
    for (size_t i = 0; i < 3; i++) {
        fixture_path(src, sizeof src, "bert_cls", files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        assert_int_equal(symlink(src, dst), 0);
    }
    fixture_path(src, sizeof src, "bert_cls", "config.json");
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, from);
    assert_non_null(at);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    f = fopen(dst, "wb");
    assert_non_null(f);
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
}

static void rm_dir(const char *dir)
{
    const char *files[] = {"model.safetensors", "vocab.txt", "tokenizer_config.json", "config.json"};
    char p[600];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void checkpoint_that_disagrees_with_its_config_is_a_format_error(void **state)
{
    (void)state;
    struct {
        const char *from, *to, *expect;
    } cases[] = {
        {"\"intermediate_size\": 64", "\"intermediate_size\": 65", "expected (65, 32)"},
        {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", "encoder.layer.2.attention.self.query.weight"},
        {"\"num_labels\": 3", "\"num_labels\": 2", "classifier has 3 outputs"},
        {"\"num_attention_heads\": 4", "\"num_attention_heads\": 5", "not a multiple of the 5 attention heads"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[64];
        make_variant(dir, sizeof dir, cases[i].from, cases[i].to);
        mcli_model *m = NULL;
        mcli_err err = {0};
        mcli_status st = engine_load(dir, NULL, &m, &err);
        rm_dir(dir);
        assert_null(m);
        assert_int_equal(st, MCLI_ERR_FORMAT);
        if (!strstr(err.msg, cases[i].expect))
            fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err.msg, cases[i].expect);
    }
}

/* One model, four threads calling embed and classify at once, small calls and big ones: every
 * result equals the reference. */
typedef struct {
    fixture *f;
    int bad;
} worker_ctx;

static void *concurrent_worker(void *p)
{
    worker_ctx *w = p;
    fixture *f = w->f;
    const size_t H = (size_t)f->H;
    float *out = malloc(f->n * H * sizeof *out);
    float logits[64 * 3];
    if (!out) {
        w->bad = 1;
        return NULL;
    }
    json_t *mean = json_object_get(f->ref, "mean"), *lref = json_object_get(f->ref, "logits");
    for (int it = 0; it < 20 && !w->bad; it++) {
        mcli_err err = {0};
        if (engine_embed(f->m, f->seqs, f->n, MCLI_POOL_MEAN, false, out, &err) != MCLI_OK ||
            engine_classify(f->m, f->seqs, f->n, logits, NULL, &err) != MCLI_OK) {
            w->bad = 1;
            break;
        }
        for (size_t i = 0; i < f->n; i++) {
            for (size_t j = 0; j < H; j++)
                if (fabs(out[i * H + j] - json_number_value(json_array_get(json_array_get(mean, i), j))) > TOL)
                    w->bad = 1;
            for (size_t j = 0; j < 3; j++)
                if (fabs(logits[i * 3 + j] - json_number_value(json_array_get(json_array_get(lref, i), j))) > TOL)
                    w->bad = 1;
        }
    }
    /* A batch of 9600 tokens: several forward chunks per call, four calls at once. (Concurrent
     * OpenBLAS calls with its threads engaged are tested in test_kernels.) */
    enum { BIG = 600 };
    mcli_seq *many = malloc(BIG * sizeof *many);
    float *big = malloc(BIG * H * sizeof *big);
    if (!many || !big) {
        w->bad = 1;
    } else {
        for (size_t i = 0; i < BIG; i++)
            many[i] = f->seqs[4]; /* the max-length sequence */
        for (int it = 0; it < 2 && !w->bad; it++) {
            mcli_err err = {0};
            if (engine_embed(f->m, many, BIG, MCLI_POOL_MEAN, false, big, &err) != MCLI_OK) {
                w->bad = 1;
                break;
            }
            for (size_t i = 0; i < BIG; i += 97)
                for (size_t j = 0; j < H; j++)
                    if (fabs(big[i * H + j] - json_number_value(json_array_get(json_array_get(mean, 4), j))) > TOL)
                        w->bad = 1;
        }
    }
    free(many);
    free(big);
    free(out);
    return NULL;
}

static void concurrent_calls_on_one_model_all_match_torch(void **state)
{
    (void)state;
    fixture *f = fixture_open_threads("bert_cls", 2);
    pthread_t t[4];
    worker_ctx w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_ctx){f, 0};
        assert_int_equal(pthread_create(&t[i], NULL, concurrent_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
    fixture_close(f);
}

static void missing_model_directory_is_not_found(void **state)
{
    (void)state;
    mcli_model *m = NULL;
    mcli_err err = {0};
    mcli_status s = engine_load(MCLI_FIXTURES "/encoders/no_such_model", NULL, &m, &err);
    assert_int_not_equal(s, MCLI_OK);
    assert_null(m);
    assert_non_null(strstr(err.msg, "no_such_model"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bert_classifier_matches_torch),
        cmocka_unit_test(bert_multilabel_gelu_new_uses_sigmoid_and_matches_torch),
        cmocka_unit_test(bert_masked_lm_with_tied_decoder_matches_torch),
        cmocka_unit_test(bare_bert_model_without_prefix_relu_matches_torch),
        cmocka_unit_test(distilbert_classifier_matches_torch),
        cmocka_unit_test(distilbert_mlm_with_computed_sinusoidal_positions_matches_torch),
        cmocka_unit_test(batch_larger_than_one_chunk_matches_torch),
        cmocka_unit_test(bad_inputs_are_rejected_with_clear_errors),
        cmocka_unit_test(concurrent_calls_on_one_model_all_match_torch),
        cmocka_unit_test(checkpoint_that_disagrees_with_its_config_is_a_format_error),
        cmocka_unit_test(missing_model_directory_is_not_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
