/* commands.c - the command table: names, one-line summaries and help texts.
 * A command's help text lives in its group file (usage_NAME) next to its code. */
#include "cli/cli.h"

extern const char usage_lightweight[];
extern const char usage_lightweight_run[];
extern const char usage_start[];
extern const char usage_stop[];
extern const char usage_status[];
extern const char usage_list[];
extern const char usage_add[];
extern const char usage_add_from_url[];
extern const char usage_update[];
extern const char usage_remove[];
extern const char usage_sysinfo[];
extern const char usage_pull[];
extern const char usage_inspect[];
extern const char usage_tokenize[];
extern const char usage_embed[];
extern const char usage_classify[];
extern const char usage_fill_mask[];
extern const char usage_generate[];
extern const char usage_chat[];
extern const char usage_serve[];
extern const char usage_bench[];

const cli_command cli_commands[] = {
    {"lightweight", "list, recommend, download and serve lightweight models", usage_lightweight, cmd_lightweight},
    {"lightweight-run", "recommend/download a model, load it and serve it", usage_lightweight_run, cmd_lightweight_run},
    {"start", "run the model service (registry + management API, port 8000)", usage_start, cmd_start},
    {"stop", "stop the running model service", usage_stop, cmd_stop},
    {"status", "show whether the model service runs, and what it serves", usage_status, cmd_status},
    {"list", "list downloaded / registered models", usage_list, cmd_list},
    {"add", "register a model from a local path", usage_add, cmd_add},
    {"add-from-url", "download a model from a URL or hub id and register it", usage_add_from_url, cmd_add_from_url},
    {"update", "change a registered model's settings", usage_update, cmd_update},
    {"remove", "remove a model (its files and manifest)", usage_remove, cmd_remove},
    {"sysinfo", "analyse this machine (CPU, memory, cgroup limits, disk, SIMD)", usage_sysinfo, cmd_sysinfo},
    {"pull", "download any Hugging Face repository of a supported architecture", usage_pull, cmd_pull},
    {"inspect", "describe a model directory: architecture, parameters, heads, files", usage_inspect, cmd_inspect},
    {"tokenize", "tokenize text with a model's tokenizer", usage_tokenize, cmd_tokenize},
    {"embed", "compute sentence embeddings with an encoder", usage_embed, cmd_embed},
    {"classify", "classify texts with a sequence-classification model", usage_classify, cmd_classify},
    {"fill-mask", "predict the [MASK] token(s) with a masked-LM model", usage_fill_mask, cmd_fill_mask},
    {"generate", "generate text with a decoder (GPT-2, DialoGPT)", usage_generate, cmd_generate},
    {"chat", "interactive multi-turn chat on a terminal (Ctrl-D ends)", usage_chat, cmd_chat},
    {"serve", "serve local model directories over HTTP", usage_serve, cmd_serve},
    {"bench", "measure inference speed and memory", usage_bench, cmd_bench},
    {NULL, NULL, NULL, NULL},
};
