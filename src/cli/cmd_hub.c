/* cmd_hub.c - commands for catalog, downloads, models on disk, system analysis. */
#include "cli/cli.h"

const char usage_lightweight[] =
    "Usage: mcli [workflow model-service] lightweight [--list | --auto | --download MODEL | --start-server] [options]\n"
    "\n"
    "  --list               list the catalog of lightweight models and which are downloaded\n"
    "  --auto               analyse this machine and recommend (and download) the model that fits\n"
    "  --download MODEL     download MODEL (a catalog key or any org/name repository)\n"
    "  --start-server       serve the downloaded models over HTTP\n"
    "  --port N             port for --start-server (default 8080)\n"
    "  --host H             address to bind (default 127.0.0.1)\n"
    "  --models-dir DIR     where models live (default ./models; env MCLI_MODELS_DIR)\n";

int cmd_lightweight(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("lightweight");
}

const char usage_lightweight_run[] =
    "Usage: mcli [workflow model-service] lightweight-run [--auto | --model M] [--port N] [options]\n"
    "\n"
    "  --auto               pick the model that fits this machine\n"
    "  --model M            use model M (catalog key or org/name)\n"
    "  --list-models        list the catalog and exit\n"
    "  --download-only      download the model and exit without serving\n"
    "  --port N             port to serve on (default 8080)\n"
    "  --host H             address to bind (default 127.0.0.1)\n"
    "  --models-dir DIR     where models live (default ./models; env MCLI_MODELS_DIR)\n";

int cmd_lightweight_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("lightweight-run");
}

const char usage_list[] =
    "Usage: mcli [workflow model-service] list [--summary] [--json] [--models-dir DIR]\n";

int cmd_list(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("list");
}

const char usage_remove[] =
    "Usage: mcli [workflow model-service] remove MODEL [--models-dir DIR]\n";

int cmd_remove(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("remove");
}

const char usage_sysinfo[] =
    "Usage: mcli sysinfo [--json] [--models-dir DIR]\n";

int cmd_sysinfo(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("sysinfo");
}

const char usage_pull[] =
    "Usage: mcli pull REPO[@REVISION] [--models-dir DIR]\n";

int cmd_pull(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_not_implemented("pull");
}
