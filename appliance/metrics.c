/* metrics.c - renders the counters kept by cache.c and fetch.c, and the store's usage, as Prometheus text.
 * Counters are plain atomics bumped on the hot path; rendering reads them without locks. They are lifetime totals:
 * history.c restores them from the store at start-up and persists them, so they do not reset at a restart. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *status_names[LARDER_NCACHE_STATUS] = {"HIT", "MISS", "STALE", "REVALIDATED", "EXPIRED", "BYPASS"};

const char *larder_cache_status_name(int s) { return s >= 0 && s < LARDER_NCACHE_STATUS ? status_names[s] : "-"; }

void larder_metrics_answered(larder_metrics_t *m, int proto, int cache_status, uint64_t sent)
{
    if (proto < 0 || proto >= LARDER_MAX_PROTO)
        return;
    atomic_fetch_add(&m->requests[proto], 1);
    atomic_fetch_add(&m->bytes_served[proto], sent);
    if (cache_status == LARDER_CACHE_HIT || cache_status == LARDER_CACHE_STALE ||
        cache_status == LARDER_CACHE_REVALIDATED)
        atomic_fetch_add(&m->bytes_saved[proto], sent);
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n) * 2;
        b->p = realloc(b->p, b->cap);
    }
}

static void counter(sbuf_t *b, const char *name, const char *help, const _Atomic uint64_t *per_proto)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int p = 0; p < larder_proto_count(); p++)
        sb_printf(b, "%s{protocol=\"%s\"} %" PRIu64 "\n", name, larder_proto_name(p), atomic_load(&per_proto[p]));
}

char *larder_metrics_render(const larder_metrics_t *m, larder_store_t *store, const larder_config_t *cfg,
                            int fetches_active, size_t *len)
{
    sbuf_t b = {malloc(8192), 0, 8192};
    _Atomic uint64_t tmp[LARDER_MAX_PROTO];
    static const struct {
        const char *name, *help;
        int status;
    } by_status[] = {
        {"larder_cache_hits_total", "Responses served fresh from the cache", LARDER_CACHE_HIT},
        {"larder_cache_misses_total", "Responses fetched from upstream", LARDER_CACHE_MISS},
        {"larder_cache_stale_total", "Stale copies served because upstream was unreachable or offline",
         LARDER_CACHE_STALE},
        {"larder_cache_revalidated_total", "Stale copies confirmed by upstream (304)", LARDER_CACHE_REVALIDATED},
        {"larder_cache_expired_total", "Stale copies replaced by new upstream content", LARDER_CACHE_EXPIRED},
        {"larder_cache_bypass_total", "Responses not cacheable by design", LARDER_CACHE_BYPASS},
    };
    for (size_t i = 0; i < sizeof(by_status) / sizeof(by_status[0]); i++) {
        for (int p = 0; p < larder_proto_count(); p++)
            atomic_store(&tmp[p], atomic_load(&m->responses[p][by_status[i].status]));
        counter(&b, by_status[i].name, by_status[i].help, tmp);
    }
    counter(&b, "larder_requests_total", "Requests answered by a protocol module (errors included)", m->requests);
    counter(&b, "larder_bytes_served_total", "Body bytes sent to clients", m->bytes_served);
    counter(&b, "larder_bytes_upstream_total", "Body bytes downloaded from upstreams for clients' requests",
            m->bytes_upstream);
    counter(&b, "larder_bytes_seed_total", "Body bytes downloaded from upstreams by seed jobs", m->bytes_seed);
    counter(&b, "larder_bytes_saved_total", "Body bytes sent from stored copies (HIT, STALE, REVALIDATED)",
            m->bytes_saved);
    counter(&b, "larder_errors_total", "Error responses (4xx/5xx) and failed upstream fetches", m->errors);
    larder_store_stats_t s;
    larder_store_get_stats(store, &s);
    for (int p = 0; p < larder_proto_count(); p++)
        atomic_store(&tmp[p], s.evictions[p]);
    counter(&b, "larder_evictions_total", "Entries evicted to honour quotas", tmp);
    sb_printf(&b, "# HELP larder_store_entry_bytes Logical bytes cached per protocol\n# TYPE larder_store_entry_bytes gauge\n");
    for (int p = 0; p < larder_proto_count(); p++)
        sb_printf(&b, "larder_store_entry_bytes{protocol=\"%s\"} %" PRIu64 "\n", larder_proto_name(p), s.entry_bytes[p]);
    sb_printf(&b, "# HELP larder_store_entries Entries cached per protocol\n# TYPE larder_store_entries gauge\n");
    for (int p = 0; p < larder_proto_count(); p++)
        sb_printf(&b, "larder_store_entries{protocol=\"%s\"} %" PRIu64 "\n", larder_proto_name(p), s.entry_count[p]);
    sb_printf(&b,
              "# HELP larder_store_blob_bytes Unique bytes on disk\n# TYPE larder_store_blob_bytes gauge\n"
              "larder_store_blob_bytes %" PRIu64 "\n"
              "# HELP larder_store_external_bytes Bytes modules keep outside the blob store (mirrors), counted in the "
              "quotas\n# TYPE larder_store_external_bytes gauge\n"
              "larder_store_external_bytes %" PRIu64 "\n"
              "# HELP larder_quota_bytes Configured total quota (0 = unlimited)\n# TYPE larder_quota_bytes gauge\n"
              "larder_quota_bytes %" PRIu64 "\n"
              "# HELP larder_fetches_active Upstream downloads in flight\n# TYPE larder_fetches_active gauge\n"
              "larder_fetches_active %d\n"
              "# HELP larder_offline 1 when offline mode is on\n# TYPE larder_offline gauge\nlarder_offline %d\n"
              "# HELP larder_client_connections Client connections open\n# TYPE larder_client_connections gauge\n"
              "larder_client_connections %" PRId64 "\n",
              s.blob_bytes, s.external_bytes, cfg->quota_total, fetches_active, cfg->offline ? 1 : 0,
              (int64_t)atomic_load(&m->client_connections));
    *len = b.len;
    return b.p;
}
