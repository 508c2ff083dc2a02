/* cmd_serve.c - commands for the lightweight HTTP server. */
#include "cli/cli.h"

const char usage_serve[] =
    "Usage: mcli serve --model DIR [--model DIR...] [--port N] [--host H]\n";

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("serve");
}
