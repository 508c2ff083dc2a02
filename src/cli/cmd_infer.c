/* cmd_infer.c - commands for encoder inference commands (embed, classify, fill-mask) and bench. */
#include "cli/cli.h"

const char usage_embed[] =
    "Usage: mcli embed --model DIR [--pooling cls|mean|none] [--normalize] [--json] TEXT...\n";

int cmd_embed(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("embed");
}

const char usage_classify[] =
    "Usage: mcli classify --model DIR [--json] TEXT...\n";

int cmd_classify(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("classify");
}

const char usage_fill_mask[] =
    "Usage: mcli fill-mask --model DIR [--top-k 5] [--json] TEXT\n";

int cmd_fill_mask(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("fill-mask");
}



const char usage_bench[] =
    "Usage: mcli bench [options]\n";

int cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("bench");
}
