/* log.h - the one logger: levelled lines to stderr with a timestamp.
 * Thread-safe (one fprintf per line under a mutex). The level is process-wide,
 * set once at start-up from --log-level / MCLI_LOG_LEVEL. */
#ifndef MCLI_UTIL_LOG_H
#define MCLI_UTIL_LOG_H

#include "util/status.h"

typedef enum { MCLI_LOG_DEBUG, MCLI_LOG_INFO, MCLI_LOG_WARN, MCLI_LOG_ERROR, MCLI_LOG_OFF } mcli_log_level;

void log_set_level(mcli_log_level level);
/* Parses "debug|info|warn|error|off"; returns -1 if unknown. */
int log_parse_level(const char *name);
void log_msg(mcli_log_level level, const char *fmt, ...) MCLI_PRINTF(2, 3);

#define LOG_DEBUG(...) log_msg(MCLI_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) log_msg(MCLI_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) log_msg(MCLI_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) log_msg(MCLI_LOG_ERROR, __VA_ARGS__)

#endif
