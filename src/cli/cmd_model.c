/* cmd_model.c - commands for inspecting model directories. */
#include "cli/cli.h"

const char usage_inspect[] =
    "Usage: mcli inspect --model DIR [--json]\n";

int cmd_inspect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("inspect");
}

