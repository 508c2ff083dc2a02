/* cmd_tokenize.c - the tokenize command. */
#include "cli/cli.h"

const char usage_tokenize[] =
    "Usage: mcli tokenize --model DIR [--json] TEXT\n";

int cmd_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("tokenize");
}
