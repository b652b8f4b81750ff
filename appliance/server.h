/* server.h - h2o listeners and worker threads. */
#ifndef LARDER_SERVER_H
#define LARDER_SERVER_H

#include "app.h"

typedef struct larder_server larder_server_t;

/* Bind listeners (or take systemd's sockets) and prepare TLS; 0 or -1 with a message in err. */
int larder_server_create(larder_app_t *app, larder_server_t **out, char *err, size_t errlen);
/* Run worker threads until SIGINT/SIGTERM; handles sd_notify READY/STOPPING/WATCHDOG. */
int larder_server_run(larder_server_t *srv);
void larder_server_destroy(larder_server_t *srv);
/* fetch-thread callback: wake every worker so parked responses resume */
void larder_server_wake(void *srv);

#endif
