/* admin_entries.c - the cached entries through the admin API: list them a page at a time, remove one, pin one.
 *
 *   GET    /-/api/v1/entries?protocol=P&q=TEXT&cursor=C&limit=N   a page in store order, next_cursor or null
 *   DELETE /-/api/v1/entries?protocol=P&key=K                      remove one unpinned entry (token)
 *   POST   /-/api/v1/pins/<set>/entries  {"protocol", "key"}       pin one cached entry (token)
 *
 * A cursor is the hex of the last listed entry's store name ("<protocol>/<key>"): opaque to clients, and a page
 * resumes right after it with a seek (larder_store_each_entry_after), so paging never repeats nor skips an entry
 * that stays cached, however many are added or removed meanwhile. q filters in the daemon, so a page may read
 * many entries; it reads at most SCAN_BUDGET of them and then ends early with a cursor (fewer entries than limit
 * and next_cursor not null: ask again). Removal is eviction's own path in the store (the blob goes with its last
 * reference, a module's external data through its `evicted` hook); a pinned entry is refused with the set named. */
#include "admin.h"
#include "log.h"
#include "module.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define SCAN_BUDGET 100000
#define NAME_MAX_BYTES 4096

/* the names of every pin set, read once per request and only when a listed entry is pinned */
typedef struct set_names {
    char **v;
    size_t n, cap;
    int loaded;
} set_names_t;

static int set_name_cb(void *ctx, const char *set)
{
    set_names_t *s = ctx;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        char **nv = realloc(s->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        s->v = nv;
        s->cap = nc;
    }
    if (!(s->v[s->n] = strdup(set)))
        return -ENOMEM;
    s->n++;
    return 0;
}

static void set_names_free(set_names_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int set_names_load(larder_store_t *st, set_names_t *s)
{
    if (s->loaded)
        return 0;
    s->loaded = 1;
    return larder_store_each_pin_set(st, set_name_cb, s);
}

/* the sets that pin (proto, key) as a JSON array; -EIO on a read error */
static int pin_sets_of(larder_store_t *st, set_names_t *names, int proto, const char *key, json_t *out)
{
    int r = set_names_load(st, names);
    for (size_t i = 0; r >= 0 && i < names->n; i++) {
        int in = larder_store_in_pin_set(st, names->v[i], proto, key);
        if (in < 0)
            r = in;
        else if (in)
            json_array_append_new(out, json_string(names->v[i]));
    }
    return r < 0 ? r : 0;
}

static int contains_nocase(const char *hay, const char *needle, size_t nl)
{
    if (!hay)
        return 0;
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < nl && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == nl)
            return 1;
    }
    return 0;
}

typedef struct list_ctx {
    larder_app_t *app;
    json_t *arr;
    const char *q;
    size_t qlen, limit, scanned;
    set_names_t names;
    char last[NAME_MAX_BYTES]; /* the store name of the last entry read: the next page starts after it */
    int more, err;
} list_ctx_t;

static int list_cb(void *arg, int proto, const char *key, const larder_entry_t *e)
{
    list_ctx_t *c = arg;
    if (proto < 0)
        return 0;
    if (json_array_size(c->arr) >= c->limit || c->scanned >= SCAN_BUDGET) {
        c->more = 1; /* one more entry exists after `last` */
        return 1;
    }
    c->scanned++;
    snprintf(c->last, sizeof(c->last), "%s/%s", larder_proto_name(proto), key);
    if (c->qlen && !contains_nocase(key, c->q, c->qlen) && !contains_nocase(e->url, c->q, c->qlen))
        return 0;
    larder_store_t *st = c->app->store;
    int npins = larder_store_pin_count(st, proto, key);
    json_t *sets = json_array();
    if (npins > 0 && pin_sets_of(st, &c->names, proto, key, sets) < 0)
        npins = -EIO;
    if (npins < 0) {
        json_decref(sets);
        c->err = -EIO;
        return 1;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s?, s:I, s:I, s:I, s:b, s:o, s:b}", "protocol",
                          larder_proto_name(proto), "key", key, "sha256", e->digest, "size", (json_int_t)e->size,
                          "url", e->url, "fetched_at", (json_int_t)e->fetched_at, "last_access", (json_int_t)e->atime,
                          "hits", (json_int_t)larder_store_hits(st, proto, key, e), "pinned", npins > 0, "pin_sets",
                          sets, "immutable", (e->flags & LARDER_ENTRY_IMMUTABLE) != 0);
    if (!o) {
        c->err = -ENOMEM;
        return 1;
    }
    if (e->external)
        json_object_set_new(o, "external", json_integer((json_int_t)e->external));
    if (!(e->flags & LARDER_ENTRY_IMMUTABLE)) { /* the ttl in force now applies (larder_entry_is_fresh) */
        uint64_t until = e->fetched_at + c->app->cfg->proto[proto].ttl;
        json_object_set_new(o, "fresh_until", json_integer((json_int_t)until));
    }
    json_array_append_new(c->arr, o);
    return 0;
}

static json_t *cursor_json(const char *name)
{
    char *hex = larder_admin_cursor_encode(name);
    json_t *j = hex ? json_string(hex) : NULL;
    free(hex);
    return j;
}

/* protocol=P into *proto (-1 when absent and !required); 0, or -1 with a 400 answered */
static int proto_param(larder_app_t *app, h2o_req_t *req, int required, int *proto)
{
    char pbuf[64];
    int r = larder_admin_query(req, "protocol", pbuf, sizeof(pbuf));
    *proto = -1;
    if (r == 0 && !required)
        return 0;
    if (r <= 0 || (*proto = larder_proto_from_name(pbuf)) < 0) {
        larder_admin_error(app, req, 400,
                           r == 0 ? "protocol= is required" : "unknown protocol (see GET /-/api/v1/info)");
        return -1;
    }
    return 0;
}

static void list_entries(larder_app_t *app, h2o_req_t *req)
{
    int proto;
    if (proto_param(app, req, 0, &proto) < 0)
        return;
    char q[1024], lbuf[32], *cursor = malloc(2 * NAME_MAX_BYTES + 1), after[NAME_MAX_BYTES];
    list_ctx_t *c = calloc(1, sizeof(*c));
    int qr = larder_admin_query(req, "q", q, sizeof(q));
    int lr = larder_admin_query(req, "limit", lbuf, sizeof(lbuf));
    int cr = cursor ? larder_admin_query(req, "cursor", cursor, 2 * NAME_MAX_BYTES + 1) : -1;
    after[0] = 0;
    const char *bad = qr < 0 ? "q= is malformed or longer than 1023 bytes"
                    : cr < 0 || (cr > 0 && larder_admin_cursor_decode(cursor, after, sizeof(after)) < 0)
                        ? "cursor= is not a cursor this API gave out"
                        : NULL;
    long limit = LIMIT_DEFAULT;
    if (!bad && lr != 0) {
        char *end = NULL;
        limit = lr > 0 ? strtol(lbuf, &end, 10) : 0;
        if (lr < 0 || !end || *end || limit < 1 || limit > LIMIT_MAX)
            bad = "limit= is a number from 1 to 1000";
    }
    free(cursor);
    if (!c || bad) {
        free(c);
        larder_admin_error(app, req, c ? 400 : 500, c ? bad : "out of memory");
        return;
    }
    c->app = app;
    c->arr = json_array();
    c->q = qr > 0 ? q : "";
    c->qlen = strlen(c->q);
    c->limit = (size_t)limit;
    int r = larder_store_each_entry_after(app->store, proto, after, list_cb, c);
    set_names_free(&c->names);
    if (r < 0 || c->err) { /* never a silently partial page */
        json_decref(c->arr);
        free(c);
        larder_admin_error(app, req, 500, "metadata store read failed; see the log");
        return;
    }
    json_t *next = c->more ? cursor_json(c->last) : json_null();
    larder_admin_send_json(app, req, 200, json_pack("{s:o, s:o}", "entries", c->arr, "next_cursor", next));
    free(c);
}

typedef struct first_set {
    larder_store_t *st;
    int proto;
    const char *key;
    char set[80];
} first_set_t;

static int first_set_cb(void *arg, const char *set)
{
    first_set_t *f = arg;
    if (larder_store_in_pin_set(f->st, set, f->proto, f->key) != 1)
        return 0;
    snprintf(f->set, sizeof(f->set), "%s", set);
    return 1;
}

static void delete_entry(larder_app_t *app, h2o_req_t *req)
{
    if (!larder_admin_authorized(app, req))
        return;
    int proto;
    char key[NAME_MAX_BYTES];
    if (proto_param(app, req, 1, &proto) < 0)
        return;
    int kr = larder_admin_query(req, "key", key, sizeof(key));
    if (kr <= 0 || !key[0]) {
        larder_admin_error(app, req, 400, kr < 0 ? "key= is malformed or too long" : "key= is required");
        return;
    }
    int r = larder_store_delete_entry(app->store, proto, key);
    if (r == -ENOENT || r == -ENAMETOOLONG) {
        larder_admin_error(app, req, 404, "no such entry");
    } else if (r == -EBUSY) {
        first_set_t f = {app->store, proto, key, {0}};
        larder_store_each_pin_set(app->store, first_set_cb, &f);
        char msg[160];
        snprintf(msg, sizeof(msg), "pinned in set %s: unpin it first", f.set[0] ? f.set : "(unreadable)");
        larder_admin_error(app, req, 409, msg);
    } else if (r < 0) {
        larder_admin_error(app, req, 500, "could not delete the entry; see the log");
    } else {
        larder_info("admin: entry %s %s deleted", larder_proto_name(proto), key);
        larder_admin_send_json(app, req, 200, json_pack("{s:s, s:s}", "deleted", key, "protocol",
                                                          larder_proto_name(proto)));
    }
}

void larder_admin_entries(larder_app_t *app, h2o_req_t *req)
{
    if (!larder_admin_allow(app, req, "GET, HEAD, DELETE"))
        return;
    if (req->input.method.len == 6) /* DELETE */
        delete_entry(app, req);
    else
        list_entries(app, req);
}

void larder_admin_pin_entry(larder_app_t *app, h2o_req_t *req, const char *set, size_t setlen)
{
    if (!larder_admin_allow(app, req, "POST"))
        return;
    if (!larder_pin_set_name_ok(set, setlen)) {
        larder_admin_error(app, req, 400, "pin set names are [A-Za-z0-9._-]{1,64}");
        return;
    }
    if (!larder_admin_authorized(app, req))
        return;
    if (req->entity.len > 8192) {
        larder_admin_error(app, req, 413, "a pin request is a small JSON object");
        return;
    }
    json_error_t je;
    json_t *j = req->entity.base && req->entity.len ? json_loadb(req->entity.base, req->entity.len, 0, &je) : NULL;
    const char *pname = json_string_value(json_object_get(j, "protocol"));
    const char *key = json_string_value(json_object_get(j, "key"));
    int proto = pname ? larder_proto_from_name(pname) : -1;
    if (!json_is_object(j) || !key || !*key || proto < 0) {
        json_decref(j);
        larder_admin_error(app, req, 400,
                           pname && proto < 0 ? "unknown protocol"
                                              : "expected a JSON object {\"protocol\": P, \"key\": K}");
        return;
    }
    char name[80];
    memcpy(name, set, setlen);
    name[setlen] = 0;
    larder_entry_t e;
    int r = larder_store_get(app->store, proto, key, &e);
    if (r == 0) {
        larder_entry_clear(&e);
        r = larder_store_pin(app->store, name, proto, key);
        if (r == 0)
            larder_info("admin: %s %s pinned in set %s", pname, key, name);
    }
    if (r == -ENOENT || r == -ENAMETOOLONG || r == -EINVAL)
        larder_admin_error(app, req, 404, "no such entry: only a cached entry can be pinned here (seed it instead)");
    else if (r < 0)
        larder_admin_error(app, req, 500, "could not pin the entry; see the log");
    else
        larder_admin_send_json(app, req, 200, json_pack("{s:s, s:s, s:s, s:b}", "pin_set", name, "protocol", pname,
                                                          "key", key, "pinned", 1));
    json_decref(j);
}
