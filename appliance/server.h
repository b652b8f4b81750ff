/* server.h - h2o listeners and worker threads. */
#ifndef LARDER_SERVER_H
#define LARDER_SERVER_H

#include "app.h"

typedef struct larder_server larder_server_t;

/* Bind listeners (or take systemd's sockets) and prepare TLS; 0 or -1 with a message in err. */
int larder_server_create(larder_app_t *app, larder_server_t **out, char *err, size_t errlen);
/* Block the signals larder_server_run waits for (INT, TERM, HUP, USR1, USR2) and ignore SIGPIPE. Call before
 * any thread starts, so that no thread gets the default action (termination) of one of them. */
void larder_server_block_signals(void);
/* Run worker threads until SIGINT/SIGTERM; SIGHUP re-reads the config file to check it, USR1/USR2 are logged and
 * ignored; handles sd_notify READY/STOPPING/STATUS, and WATCHDOG=1 only while every worker's and the fetch
 * thread's loop answers its heartbeat within half the watchdog interval (server.c, heartbeat.h). */
int larder_server_run(larder_server_t *srv);
void larder_server_destroy(larder_server_t *srv);
/* fetch-thread callback: wake every worker so parked responses resume */
void larder_server_wake(void *srv);

#endif
