/* cmd_generate.c - decoder commands: generate and chat. */
#include "cli/cli.h"

const char usage_generate[] =
    "Usage: mcli generate --model DIR [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--greedy] [--stream] [--json] PROMPT\n";

int cmd_generate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("generate");
}

const char usage_chat[] =
    "Usage: mcli chat --model DIR\n";

int cmd_chat(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("chat");
}

