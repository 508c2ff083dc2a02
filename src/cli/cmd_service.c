/* cmd_service.c - commands for the model service (registry, management API). */
#include "cli/cli.h"

const char usage_start[] =
    "Usage: mcli [workflow model-service] start [--host H] [--port 8000] [--models-dir D] [--config FILE] [--daemon]\n";

int cmd_start(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("start");
}

const char usage_stop[] =
    "Usage: mcli [workflow model-service] stop\n";

int cmd_stop(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("stop");
}

const char usage_status[] =
    "Usage: mcli [workflow model-service] status [--json]\n";

int cmd_status(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("status");
}

const char usage_add[] =
    "Usage: mcli [workflow model-service] add NAME --path DIR [--type TYPE] [options]\n";

int cmd_add(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("add");
}

const char usage_add_from_url[] =
    "Usage: mcli [workflow model-service] add-from-url NAME URL [options]\n";

int cmd_add_from_url(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("add-from-url");
}

const char usage_update[] =
    "Usage: mcli [workflow model-service] update ID [--temperature T] [--top-p P] [--top-k K] [--max-length N]\n";

int cmd_update(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("update");
}
