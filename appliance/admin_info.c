/* admin_info.c - GET /-/api/v1/info: what the web UI's Clients page needs to write a client's set-up for this
 * appliance. The core adds what it knows (version, offline, the admin token being set - never the token - the
 * recording, each module's enabled flag and mount); each module adds the names its clients are configured with
 * through its `client_info` hook (module.h), since the core never names a protocol. */
#include "admin.h"
#include "module.h"
#include "record.h"

#include <jansson.h>

void larder_admin_info(larder_app_t *app, h2o_req_t *req)
{
    if (!larder_admin_allow(app, req, "GET, HEAD"))
        return;
    const larder_config_t *cfg = app->cfg;
    json_t *top = json_pack("{s:s, s:b, s:b}", "version", LARDER_VERSION, "offline", cfg->offline, "admin_token_set",
                            cfg->admin_token != NULL);
    json_t *protos = json_object();
    for (int p = 0; p < larder_nprotocols; p++) {
        const larder_protocol_t *m = larder_protocols[p];
        /* proxy: the module answers requests made to Larder as an HTTP proxy (absolute URIs) */
        json_t *mine = json_pack("{s:b, s:s, s:b}", "enabled", cfg->proto[m->proto].enabled, "mount", m->mount,
                                 "proxy", m->handle_proxy != NULL);
        if (m->client_info)
            m->client_info(cfg, mine, top);
        json_object_set_new(protos, m->name, mine);
    }
    json_object_set_new(top, "protocols", protos);
    json_t *rec = json_pack("{s:b, s:b}", "available", app->record != NULL, "recording", 0);
    if (app->record) {
        larder_record_status_t s;
        larder_record_get(app->record, &s);
        json_object_set_new(rec, "recording", json_boolean(s.active));
        json_object_set_new(rec, "pin_set", s.set[0] ? json_string(s.set) : json_null());
    }
    json_object_set_new(top, "record", rec);
    larder_admin_send_json(app, req, 200, top);
}
