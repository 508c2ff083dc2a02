/* cmd_model.c - commands for reading model files and tokenizers. */
#include "cli/cli.h"

const char usage_inspect[] =
    "Usage: mcli inspect --model DIR [--json]\n";

int cmd_inspect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("inspect");
}

const char usage_tokenize[] =
    "Usage: mcli tokenize --model DIR [--json] TEXT\n";

int cmd_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("tokenize");
}
