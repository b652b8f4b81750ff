/* record.c - recording: pin every served object to one set (see record.h).
 *
 * The state is one mutex-protected struct; the hot path (no recording) is one atomic load. While recording, each
 * answer looks its (proto, key) up in a set of 64-bit hashes of the entries this recording already pinned, so a
 * build that asks for the same index a hundred times writes its pin once; past RECORD_SEEN_MAX distinct entries
 * the set stops growing and the store's own check (a pin already present is not written again) takes over. */
#include "record.h"
#include "log.h"
#include "store.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RECORD_SEEN_MAX (4u << 20) /* distinct entries remembered: 32 MiB of hashes at most */

struct larder_record {
    atomic_int active;
    pthread_mutex_t mu;
    larder_record_status_t st;
    int has_client, family, prefix;
    unsigned char addr[16];
    uint64_t *seen; /* open addressing, 0 = empty */
    size_t seen_cap, seen_n;
};

larder_record_t *larder_record_create(void)
{
    larder_record_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void larder_record_destroy(larder_record_t *r)
{
    if (!r)
        return;
    if (atomic_load(&r->active))
        larder_info("record: pin set %s: recording ended with the daemon (%" PRIu64 " entries pinned)", r->st.set,
                    r->st.recorded);
    free(r->seen);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int larder_record_parse_client(const char *s, unsigned char addr[16], int *family, int *prefix)
{
    char buf[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n + 1);
    char *slash = strchr(buf, '/');
    int pfx = -1;
    if (slash) {
        *slash = 0;
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || v < 0 || v > 128)
            return -1;
        pfx = (int)v;
    }
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, buf, addr) == 1) {
        if (pfx > 32)
            return -1;
        *family = AF_INET;
        *prefix = pfx < 0 ? 32 : pfx;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        *family = AF_INET6;
        *prefix = pfx < 0 ? 128 : pfx;
        return 0;
    }
    return -1;
}

int larder_record_start(larder_record_t *r, const char *set, const char *client, char *err, size_t errlen)
{
    if (!set || !larder_pin_set_name_ok(set, strlen(set))) {
        snprintf(err, errlen, "pin set names are [A-Za-z0-9._-]{1,64}");
        return -EINVAL;
    }
    unsigned char addr[16];
    int family = 0, prefix = 0;
    if (client && *client && larder_record_parse_client(client, addr, &family, &prefix) < 0) {
        snprintf(err, errlen, "'%.64s' is not a client address (an IPv4 or IPv6 address, optionally /PREFIX)", client);
        return -EINVAL;
    }
    pthread_mutex_lock(&r->mu);
    if (atomic_load(&r->active)) {
        snprintf(err, errlen, "already recording into pin set %s; stop it first (larder record stop)", r->st.set);
        pthread_mutex_unlock(&r->mu);
        return -EBUSY;
    }
    memset(&r->st, 0, sizeof(r->st));
    snprintf(r->st.set, sizeof(r->st.set), "%s", set);
    r->has_client = client && *client;
    if (r->has_client) {
        snprintf(r->st.client, sizeof(r->st.client), "%s", client);
        memcpy(r->addr, addr, 16);
        r->family = family;
        r->prefix = prefix;
    }
    r->st.active = 1;
    r->st.started_at = larder_now();
    free(r->seen);
    r->seen = NULL;
    r->seen_cap = r->seen_n = 0;
    atomic_store(&r->active, 1);
    pthread_mutex_unlock(&r->mu);
    larder_info("record: recording into pin set %s (%s%s)", set, r->has_client ? "client " : "every client",
                r->has_client ? client : "");
    return 0;
}

int larder_record_stop(larder_record_t *r)
{
    pthread_mutex_lock(&r->mu);
    if (!atomic_load(&r->active)) {
        pthread_mutex_unlock(&r->mu);
        return -ENOENT;
    }
    atomic_store(&r->active, 0);
    r->st.active = 0;
    r->st.stopped_at = larder_now();
    free(r->seen);
    r->seen = NULL;
    r->seen_cap = r->seen_n = 0;
    larder_info("record: pin set %s: recording stopped, %" PRIu64 " entries pinned from %" PRIu64 " answers", r->st.set,
                r->st.recorded, r->st.served);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void larder_record_get(larder_record_t *r, larder_record_status_t *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
}

static uint64_t entry_hash(int proto, const char *key)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(unsigned)proto;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h ? h : 1;
}

/* 1 when h was already there; 0 when added (or the set is full: the store checks) */
static int seen_add(larder_record_t *r, uint64_t h)
{
    if (r->seen_n * 2 >= r->seen_cap) {
        if (r->seen_cap >= RECORD_SEEN_MAX)
            return 0;
        size_t ncap = r->seen_cap ? r->seen_cap * 2 : 1024;
        uint64_t *nv = calloc(ncap, sizeof(*nv));
        if (!nv)
            return 0;
        for (size_t i = 0; i < r->seen_cap; i++)
            if (r->seen[i]) {
                size_t j = r->seen[i] & (ncap - 1);
                while (nv[j])
                    j = (j + 1) & (ncap - 1);
                nv[j] = r->seen[i];
            }
        free(r->seen);
        r->seen = nv;
        r->seen_cap = ncap;
    }
    size_t j = h & (r->seen_cap - 1);
    while (r->seen[j]) {
        if (r->seen[j] == h)
            return 1;
        j = (j + 1) & (r->seen_cap - 1);
    }
    r->seen[j] = h;
    r->seen_n++;
    return 0;
}

static int client_matches(const larder_record_t *r, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername ? req->conn->callbacks->get_peername(req->conn, (void *)&ss) : 0;
    if (sl == 0)
        return 0;
    unsigned char a[16] = {0};
    int fam = ss.ss_family;
    if (fam == AF_INET) {
        memcpy(a, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (fam == AF_INET6) {
        const unsigned char *b = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (r->family == AF_INET && memcmp(b, mapped, 12) == 0) { /* ::ffff:a.b.c.d on a dual-stack socket */
            memcpy(a, b + 12, 4);
            fam = AF_INET;
        } else
            memcpy(a, b, 16);
    } else
        return 0;
    if (fam != r->family)
        return 0;
    int bits = r->prefix, i = 0;
    for (; bits >= 8; bits -= 8, i++)
        if (a[i] != r->addr[i])
            return 0;
    if (bits) {
        unsigned char m = (unsigned char)(0xff << (8 - bits));
        if ((a[i] & m) != (r->addr[i] & m))
            return 0;
    }
    return 1;
}

void larder_record_served(larder_app_t *app, h2o_req_t *req, int proto, const char *key)
{
    larder_record_t *r = app->record;
    if (!r || !atomic_load_explicit(&r->active, memory_order_relaxed) || !key || !*key)
        return;
    char set[80];
    pthread_mutex_lock(&r->mu);
    if (!atomic_load(&r->active)) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (r->has_client && !client_matches(r, req)) {
        r->st.skipped++;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    r->st.served++;
    if (seen_add(r, entry_hash(proto, key))) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    memcpy(set, r->st.set, sizeof(set));
    pthread_mutex_unlock(&r->mu);
    /* outside the recording's lock: the store has its own */
    int e = larder_store_pin(app->store, set, proto, key);
    pthread_mutex_lock(&r->mu);
    if (e == 0 && strcmp(set, r->st.set) == 0)
        r->st.recorded++;
    pthread_mutex_unlock(&r->mu);
    if (e < 0)
        larder_warn("record: could not pin %s %s to %s: %s", larder_proto_name(proto), key, set, strerror(-e));
}
