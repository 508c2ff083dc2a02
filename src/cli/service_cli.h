/* service_cli.h - model-service commands that other command files can call (cmd_service.c).
 *
 * `list` and `remove` are cmd_hub.c's commands (the models directory). The registry half of
 * them lives in cmd_service.c and is exported here so that cmd_list / cmd_remove can hand over
 * (e.g. on a --registry flag, or when the service is running):
 *
 *   service_list_registry(argc, argv)    [--summary] [--json] [--direct] [--models-dir D] [--db F]
 *                                        [--config F] [--pid-file F]
 *   service_remove_registry(argc, argv)  ID|NAME [same options]
 *
 * argv[0] is the command name; both return exit codes like any command (0, 1, 2). They talk to
 * the running service when there is one (pid file + a live process), else to the database.
 */
#ifndef MCLI_CLI_SERVICE_CLI_H
#define MCLI_CLI_SERVICE_CLI_H

int service_list_registry(int argc, char **argv);
int service_remove_registry(int argc, char **argv);

#endif
