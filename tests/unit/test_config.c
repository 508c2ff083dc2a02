/* Unit tests for formats/config: every spelling of the sizes, defaults as transformers has them,
 * activations, labels, heads, and clear errors for unsupported or malformed configs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/config.h"

#define CKPT MCLI_FIXTURES "/checkpoints"

static char tmp_path[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_path, sizeof tmp_path, "/tmp/mcli_cfg_%d.json", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(tmp_path);
    return 0;
}

/* Writes json to the temp file and loads it. */
static mcli_status load_json(const char *json, mcli_config *c, mcli_err *err)
{
    FILE *f = fopen(tmp_path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    mcli_err_clear(err);
    return config_load(tmp_path, c, err);
}

static void expect_error(const char *json, mcli_status code, const char *needle)
{
    mcli_config c;
    mcli_err err;
    mcli_status s = load_json(json, &c, &err);
    if (s != code || !strstr(err.msg, needle))
        fail_msg("%s: got %s \"%s\", want %s containing \"%s\"", json, mcli_status_name(s), err.msg,
                 mcli_status_name(code), needle);
}

static void bert_fixture_dir_loads_sizes_and_labels(void **state)
{
    (void)state;
    mcli_config c;
    mcli_err err;
    assert_int_equal(config_load(CKPT "/bert_st_f32", &c, &err), MCLI_OK);
    assert_int_equal(c.arch, MCLI_ARCH_BERT);
    assert_string_equal(c.model_type, "bert");
    assert_string_equal(c.architecture, "BertForSequenceClassification");
    assert_int_equal(c.head, MCLI_HEAD_SEQ_CLS);
    assert_int_equal(c.vocab_size, 40);
    assert_int_equal(c.hidden_size, 8);
    assert_int_equal(c.n_layers, 2);
    assert_int_equal(c.n_heads, 2);
    assert_int_equal(c.intermediate_size, 16);
    assert_int_equal(c.max_positions, 16);
    assert_int_equal(c.type_vocab_size, 2);
    assert_int_equal(c.activation, MCLI_ACT_GELU);
    assert_true(c.layer_norm_eps == 1e-12f);
    assert_int_equal(c.n_labels, 2);
    assert_string_equal(c.labels[0], "NEGATIVE");
    assert_string_equal(c.labels[1], "POSITIVE");
    assert_int_equal(c.pad_token_id, 0);
    assert_int_equal(c.bos_token_id, -1);
    assert_false(c.multi_label);
    config_free(&c);
}

static void distilbert_fixture_uses_its_own_field_names(void **state)
{
    (void)state;
    mcli_config c;
    mcli_err err;
    assert_int_equal(config_load(CKPT "/distilbert_pt_zip/config.json", &c, &err), MCLI_OK);
    assert_int_equal(c.arch, MCLI_ARCH_DISTILBERT);
    assert_int_equal(c.hidden_size, 8);
    assert_int_equal(c.n_layers, 2);
    assert_int_equal(c.intermediate_size, 16);
    assert_int_equal(c.type_vocab_size, 0);
    assert_true(c.layer_norm_eps == 1e-12f);
    assert_false(c.sinusoidal_pos_embds);
    config_free(&c);
}

static void gpt2_defaults_follow_transformers(void **state)
{
    (void)state;
    mcli_config c;
    mcli_err err;
    assert_int_equal(load_json("{\"model_type\":\"gpt2\",\"n_embd\":64,\"n_head\":4,\"n_inner\":null,"
                               "\"architectures\":[\"GPT2LMHeadModel\"]}",
                               &c, &err),
                     MCLI_OK);
    assert_int_equal(c.arch, MCLI_ARCH_GPT2);
    assert_int_equal(c.head, MCLI_HEAD_CAUSAL_LM);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.intermediate_size, 256); /* 4 * n_embd */
    assert_int_equal(c.n_layers, 12);
    assert_int_equal(c.vocab_size, 50257);
    assert_int_equal(c.max_positions, 1024);
    assert_int_equal(c.activation, MCLI_ACT_GELU_NEW);
    assert_true(c.layer_norm_eps == 1e-5f);
    assert_int_equal(c.bos_token_id, 50256);
    assert_int_equal(c.eos_token_id, 50256);
    assert_int_equal(c.pad_token_id, -1);
    assert_int_equal(c.n_labels, 0);
    config_free(&c);
    assert_int_equal(load_json("{\"model_type\":\"gpt2\",\"eos_token_id\":[50256,50255]}", &c, &err),
                     MCLI_OK);
    assert_int_equal(c.eos_token_id, 50256); /* a list of eos ids: the first */
    config_free(&c);
}

static void generic_size_names_are_accepted_and_conflicts_refused(void **state)
{
    (void)state;
    mcli_config c;
    mcli_err err;
    assert_int_equal(load_json("{\"model_type\":\"gpt2\",\"hidden_size\":32,\"num_attention_heads\":2,"
                               "\"num_hidden_layers\":3,\"max_position_embeddings\":64}",
                               &c, &err),
                     MCLI_OK);
    assert_int_equal(c.hidden_size, 32);
    assert_int_equal(c.n_heads, 2);
    assert_int_equal(c.n_layers, 3);
    assert_int_equal(c.max_positions, 64);
    config_free(&c);
    assert_int_equal(load_json("{\"model_type\":\"distilbert\",\"hidden_size\":32,\"num_attention_heads\":4,"
                               "\"num_hidden_layers\":1}",
                               &c, &err),
                     MCLI_OK);
    assert_int_equal(c.hidden_size, 32);
    assert_int_equal(c.n_layers, 1);
    config_free(&c);
    expect_error("{\"model_type\":\"gpt2\",\"n_embd\":32,\"hidden_size\":64}", MCLI_ERR_FORMAT, "disagree");
}

static void activations_map_to_the_right_formula(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        mcli_activation act;
    } ok[] = {
        {"gelu", MCLI_ACT_GELU},          {"gelu_python", MCLI_ACT_GELU},
        {"gelu_new", MCLI_ACT_GELU_NEW},  {"gelu_pytorch_tanh", MCLI_ACT_GELU_NEW},
        {"gelu_fast", MCLI_ACT_GELU_NEW}, {"gelu_accurate", MCLI_ACT_GELU_NEW},
        {"relu", MCLI_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"model_type\":\"bert\",\"hidden_act\":\"%s\"}", ok[i].name);
        mcli_config c;
        mcli_err err;
        assert_int_equal(load_json(json, &c, &err), MCLI_OK);
        assert_int_equal(c.activation, ok[i].act);
        config_free(&c);
    }
    expect_error("{\"model_type\":\"bert\",\"hidden_act\":\"quick_gelu\"}", MCLI_ERR_UNSUPPORTED,
                 "quick_gelu");
    expect_error("{\"model_type\":\"distilbert\",\"activation\":\"silu\"}", MCLI_ERR_UNSUPPORTED, "silu");
    expect_error("{\"model_type\":\"gpt2\",\"activation_function\":3}", MCLI_ERR_FORMAT, "must be a string");
}

static void unknown_model_type_names_it_and_the_supported_ones(void **state)
{
    (void)state;
    expect_error("{\"model_type\":\"roberta\"}", MCLI_ERR_UNSUPPORTED, "\"roberta\" is not supported");
    expect_error("{\"model_type\":\"roberta\"}", MCLI_ERR_UNSUPPORTED, "bert, distilbert, gpt2");
    expect_error("{\"hidden_size\":8}", MCLI_ERR_FORMAT, "no \"model_type\"");
}

static void model_type_is_inferred_from_old_architectures(void **state)
{
    (void)state;
    mcli_config c;
    mcli_err err;
    assert_int_equal(load_json("{\"architectures\":[\"DistilBertForMaskedLM\"]}", &c, &err), MCLI_OK);
    assert_int_equal(c.arch, MCLI_ARCH_DISTILBERT);
    assert_int_equal(c.head, MCLI_HEAD_MASKED_LM);
    config_free(&c);
}

static void architecture_selects_the_head(void **state)
{
    (void)state;
    static const struct {
        const char *arch;
        mcli_head_kind head;
    } cases[] = {
        {"BertModel", MCLI_HEAD_BASE},
        {"BertForMaskedLM", MCLI_HEAD_MASKED_LM},
        {"BertForPreTraining", MCLI_HEAD_MASKED_LM},
        {"BertForSequenceClassification", MCLI_HEAD_SEQ_CLS},
        {"BertForQuestionAnswering", MCLI_HEAD_BASE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"model_type\":\"bert\",\"architectures\":[\"%s\"]}", cases[i].arch);
        mcli_config c;
        mcli_err err;
        assert_int_equal(load_json(json, &c, &err), MCLI_OK);
        assert_int_equal(c.head, cases[i].head);
        assert_string_equal(c.architecture, cases[i].arch);
        config_free(&c);
    }
}

static void sizes_are_validated(void **state)
{
    (void)state;
    expect_error("{\"model_type\":\"bert\",\"hidden_size\":10,\"num_attention_heads\":4}", MCLI_ERR_FORMAT,
                 "not a multiple");
    expect_error("{\"model_type\":\"bert\",\"hidden_size\":0}", MCLI_ERR_FORMAT, "outside");
    expect_error("{\"model_type\":\"bert\",\"hidden_size\":-8}", MCLI_ERR_FORMAT, "outside");
    expect_error("{\"model_type\":\"bert\",\"num_hidden_layers\":100000}", MCLI_ERR_FORMAT, "outside");
    expect_error("{\"model_type\":\"bert\",\"vocab_size\":99999999999999}", MCLI_ERR_FORMAT, "outside");
    expect_error("{\"model_type\":\"bert\",\"hidden_size\":\"768\"}", MCLI_ERR_FORMAT, "integer");
    expect_error("{\"model_type\":\"bert\",\"hidden_size\":7.5}", MCLI_ERR_FORMAT, "integer");
    expect_error("{\"model_type\":\"bert\",\"layer_norm_eps\":0}", MCLI_ERR_FORMAT, "layer_norm_eps");
    expect_error("{\"model_type\":\"bert\",\"vocab_size\":10,\"pad_token_id\":10}", MCLI_ERR_FORMAT,
                 "pad_token_id");
    expect_error("{\"model_type\":\"bert\",\"position_embedding_type\":\"relative_key\"}",
                 MCLI_ERR_UNSUPPORTED, "relative_key");
    expect_error("{\"model_type\":\"gpt2\",\"scale_attn_by_inverse_layer_idx\":true}", MCLI_ERR_UNSUPPORTED,
                 "scale_attn_by_inverse_layer_idx");
    expect_error("{\"model_type\":\"bert\"", MCLI_ERR_FORMAT, "invalid JSON");
    expect_error("[]", MCLI_ERR_FORMAT, "not a JSON object");
    expect_error("{\"model_type\":\"bert\",\"model_type\":\"gpt2\"}", MCLI_ERR_FORMAT, "duplicate");
}

static void labels_come_from_id2label_in_id_order(void **state)
{
    (void)state;
    mcli_config c;
    mcli_err err;
    assert_int_equal(load_json("{\"model_type\":\"bert\",\"id2label\":{\"2\":\"c\",\"0\":\"a\",\"1\":\"b\"},"
                               "\"problem_type\":\"multi_label_classification\"}",
                               &c, &err),
                     MCLI_OK);
    assert_int_equal(c.n_labels, 3);
    assert_string_equal(c.labels[0], "a");
    assert_string_equal(c.labels[2], "c");
    assert_true(c.multi_label);
    config_free(&c);
    assert_int_equal(load_json("{\"model_type\":\"bert\",\"label2id\":{\"pos\":1,\"neg\":0}}", &c, &err),
                     MCLI_OK);
    assert_int_equal(c.n_labels, 2);
    assert_string_equal(c.labels[0], "neg");
    assert_string_equal(c.labels[1], "pos");
    config_free(&c);
    /* num_labels disagreeing with id2label wins, as in transformers */
    assert_int_equal(
        load_json("{\"model_type\":\"bert\",\"num_labels\":3,\"id2label\":{\"0\":\"x\",\"1\":\"y\"}}", &c,
                  &err),
        MCLI_OK);
    assert_int_equal(c.n_labels, 3);
    assert_string_equal(c.labels[2], "LABEL_2");
    config_free(&c);
    expect_error("{\"model_type\":\"bert\",\"id2label\":{\"0\":\"a\",\"2\":\"b\"}}", MCLI_ERR_FORMAT,
                 "outside");
    expect_error("{\"model_type\":\"bert\",\"id2label\":{\"0\":\"a\",\"01\":\"b\"}}", MCLI_ERR_FORMAT,
                 "not a label id");
    expect_error("{\"model_type\":\"bert\",\"id2label\":{\"0\":\"a\",\"-1\":\"b\"}}", MCLI_ERR_FORMAT,
                 "not a label id");
    expect_error("{\"model_type\":\"bert\",\"id2label\":{\"0\":5}}", MCLI_ERR_FORMAT, "must be a string");
    expect_error("{\"model_type\":\"bert\",\"label2id\":{\"a\":0,\"b\":0}}", MCLI_ERR_FORMAT, "twice");
}

static void missing_config_is_not_found(void **state)
{
    (void)state;
    mcli_config c;
    mcli_err err;
    assert_int_equal(config_load("/nonexistent/dir", &c, &err), MCLI_ERR_NOT_FOUND);
    assert_int_equal(config_load("/tmp", &c, &err), MCLI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no config.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bert_fixture_dir_loads_sizes_and_labels),
        cmocka_unit_test(distilbert_fixture_uses_its_own_field_names),
        cmocka_unit_test(gpt2_defaults_follow_transformers),
        cmocka_unit_test(generic_size_names_are_accepted_and_conflicts_refused),
        cmocka_unit_test(activations_map_to_the_right_formula),
        cmocka_unit_test(unknown_model_type_names_it_and_the_supported_ones),
        cmocka_unit_test(model_type_is_inferred_from_old_architectures),
        cmocka_unit_test(architecture_selects_the_head),
        cmocka_unit_test(sizes_are_validated),
        cmocka_unit_test(labels_come_from_id2label_in_id_order),
        cmocka_unit_test(missing_config_is_not_found),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
