/* log.h - logging: journald with structured fields under systemd, stderr otherwise. */
#ifndef LARDER_LOG_H
#define LARDER_LOG_H

#include <stdint.h>

enum { LARDER_LOG_ERR = 3, LARDER_LOG_WARN = 4, LARDER_LOG_INFO = 6, LARDER_LOG_DEBUG = 7 };

void larder_log_init(void);
void larder_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define larder_err(...) larder_log(LARDER_LOG_ERR, __VA_ARGS__)
#define larder_warn(...) larder_log(LARDER_LOG_WARN, __VA_ARGS__)
#define larder_info(...) larder_log(LARDER_LOG_INFO, __VA_ARGS__)

/* one line per request: at info, or warn for a 5xx */
void larder_log_request(const char *proto, const char *method, const char *path, int status, const char *cache_status,
                        uint64_t bytes, int64_t upstream_ms, const char *note);
/* the same with the level of a status below 500 given (LARDER_LOG_DEBUG for the admin surface's successful reads,
 * which a polling UI would otherwise fill the log with); a 5xx is still a warning */
void larder_log_request_at(int level, const char *proto, const char *method, const char *path, int status,
                           const char *cache_status, uint64_t bytes, int64_t upstream_ms, const char *note);

#endif
