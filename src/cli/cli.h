/* cli.h - the command tree of the mcli binary.
 *
 * Each command is `int cmd_NAME(int argc, char **argv)` where argv[0] is the
 * command name; it returns a process exit code (0 ok, 1 failure, 2 usage).
 * Results go to stdout, errors to stderr. Commands live in one file per group:
 *   cmd_model.c   inspect (formats); cmd_tokenize.c tokenize (tokenizers)
 *   cmd_infer.c   embed, classify, fill-mask, bench (engine, encoders)
 *   cmd_generate.c generate, chat (engine, decoders)
 *   cmd_hub.c     lightweight, lightweight-run, pull, list, remove, sysinfo (hub/store/sys)
 *   cmd_serve.c   serve, and the server half of lightweight / lightweight-run
 *   cmd_service.c start, stop, status, add, add-from-url, update (model service)
 */
#ifndef MCLI_CLI_CLI_H
#define MCLI_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

typedef int (*cli_cmd_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    const char *summary;  /* one line for `mcli --help` */
    const char *usage;    /* full text for `mcli NAME --help` */
    cli_cmd_fn run;
} cli_command;

/* The command table, terminated by an entry with name == NULL. */
extern const cli_command cli_commands[];

/* Prints "mcli: not implemented yet: NAME" and returns 2 (the reserved-command contract). */
int cli_not_implemented(const char *name);

/* Prints "mcli NAME: MESSAGE" plus "Try 'mcli NAME --help'." to stderr; returns 2. */
int cli_usage_error(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True if argv[1..] contains -h or --help. */
bool cli_wants_help(int argc, char **argv);

/* Prints the usage text of a command to out. */
void cli_print_command_help(const char *name, FILE *out);

/* Serves the model directories dirs[0..n) over HTTP until SIGINT/SIGTERM (cmd_serve.c).
 * Used by `serve`, `lightweight --start-server` and `lightweight-run`. Returns an exit code. */
typedef struct {
    const char *const *model_dirs;
    size_t n_models;
    const char *host;      /* default "127.0.0.1" */
    int port;              /* default 8080 */
    const char *models_dir;/* the models directory (for /api/pull, /api/tags, /api/delete); may be NULL */
} cli_serve_opts;
int cli_serve_models(const cli_serve_opts *opts);

/* Commands (see the group files above). */
int cmd_tokenize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_fill_mask(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_lightweight(int argc, char **argv);
int cmd_lightweight_run(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_sysinfo(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_add_from_url(int argc, char **argv);
int cmd_update(int argc, char **argv);

#endif
