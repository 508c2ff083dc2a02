/* tokenizer_json.c - loading the "fast" tokenizer.json format (placeholder until the parser lands). */
#include "tokenizers/tokenizer_impl.h"

mcli_status tokenizer_json_load(const char *path, mcli_tokenizer **out, mcli_err *err)
{
    *out = NULL;
    return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: tokenizer.json is not read yet", path);
}
