/* main.c - entry point: global flags, the optional `workflow model-service`
 * prefix of the original tool, and dispatch to one command. The only place
 * (with the command functions it calls) that turns a status into an exit code. */
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/log.h"

static void print_main_help(FILE *out)
{
    fprintf(out,
            "mcli %s - a lightweight model server for small Hugging Face transformers\n"
            "\n"
            "Usage: mcli [workflow model-service] <command> [options]\n"
            "       mcli <command> --help\n"
            "\n"
            "The `workflow model-service` prefix of the original tool is accepted and optional:\n"
            "`mcli workflow model-service lightweight --list` is `mcli lightweight --list`.\n"
            "\n"
            "Commands:\n",
            MCLI_VERSION);
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(out, "  %-16s %s\n", c->name, c->summary);
    fprintf(out, "\n"
                 "Global options:\n"
                 "  -h, --help          show this help (or a command's help after its name)\n"
                 "  -V, --version       print the version\n"
                 "  --log-level LEVEL   debug|info|warn|error|off (default info; env MCLI_LOG_LEVEL)\n");
}

static const cli_command *find_command(const char *name)
{
    for (const cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

void cli_print_command_help(const char *name, FILE *out)
{
    const cli_command *c = find_command(name);
    if (!c)
        return;
    fprintf(out, "mcli %s - %s\n\n%s", c->name, c->summary, c->usage);
}

int cli_not_implemented(const char *name)
{
    fprintf(stderr, "mcli: not implemented yet: %s\n", name);
    return 2;
}

int cli_usage_error(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mcli %s: ", name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'mcli %s --help'.\n", name);
    va_end(ap);
    return 2;
}

int main(int argc, char **argv)
{
    const char *env_level = getenv("MCLI_LOG_LEVEL");
    if (env_level && log_parse_level(env_level) >= 0)
        log_set_level((mcli_log_level)log_parse_level(env_level));

    int i = 1;
    bool prefixed = false;
    /* Global options before the command. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_main_help(stdout);
            return 0;
        }
        if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("mcli %s\n", MCLI_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            int level = log_parse_level(argv[++i]);
            if (level < 0) {
                fprintf(stderr, "mcli: unknown log level '%s' (use debug|info|warn|error|off)\n", argv[i]);
                return 2;
            }
            log_set_level((mcli_log_level)level);
            continue;
        }
        fprintf(stderr, "mcli: unknown option '%s'\n", argv[i]);
        fprintf(stderr, "Usage: mcli [workflow model-service] <command> [options]; try 'mcli --help'.\n");
        return 2;
    }
    /* The original tool's command group prefix: `workflow model-service`. */
    if (i < argc && strcmp(argv[i], "workflow") == 0) {
        i++;
        if (i >= argc || strcmp(argv[i], "model-service") != 0) {
            fprintf(stderr, "mcli: unknown command group 'workflow %s' (only 'workflow model-service')\n",
                    i < argc ? argv[i] : "");
            fprintf(stderr, "Usage: mcli [workflow model-service] <command> [options]; try 'mcli --help'.\n");
            return 2;
        }
        i++;
        prefixed = true;
    }
    if (i >= argc) {
        print_main_help(prefixed ? stdout : stderr);
        return prefixed ? 0 : 2;
    }
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "help") == 0) {
        if (i + 1 < argc && strcmp(argv[i], "help") == 0 && find_command(argv[i + 1])) {
            cli_print_command_help(argv[i + 1], stdout);
            return 0;
        }
        print_main_help(stdout);
        return 0;
    }
    const cli_command *cmd = find_command(argv[i]);
    if (!cmd) {
        fprintf(stderr, "mcli: unknown command '%s'\n", argv[i]);
        fprintf(stderr, "Usage: mcli [workflow model-service] <command> [options]; try 'mcli --help'.\n");
        return 2;
    }
    if (cli_wants_help(argc - i, argv + i)) {
        cli_print_command_help(cmd->name, stdout);
        return 0;
    }
    return cmd->run(argc - i, argv + i);
}
