/* bundle.c - the bundle format's documents and its incremental reader (see bundle.h, docs/bundles.md).
 *
 * The reader sits on the tar reader: it takes larder-bundle.json first (format and version, checked before
 * anything else is read), then manifest.json (every entry, record and blob checked: names of known modules,
 * printable bounded keys, lower-case sha256, one size per digest, no key twice), then the blobs, each hashed as
 * its bytes pass and compared with the manifest before the sink's blob_end hears of it. Whatever does not fit -
 * an unknown or repeated member, a blob the manifest does not name, a wrong size or digest, bytes after the end -
 * stops the reader with one message that names the member and what is wrong. Entries whose module keeps data
 * outside the blob store (a git mirror) carry it as one more member, external/<entry index>, with its own sha256
 * and size in the entry ("external": {...}); it is checked like a blob. It holds the manifest and one tar header
 * in memory, never blob bytes: the sink decides where they go. */
#include "bundle.h"
#include "config.h"
#include "util.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LARDER_VERSION_STR "0.1.0"
#define MAX_ENTRIES 2000000
#define MAX_META 4000000
#define MAX_STR 8192

/* ---- helpers ---- */

/* printable (UTF-8 beyond ASCII allowed), no control characters: keys and header values */
static int text_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static void free_entry(larder_bundle_entry_t *e)
{
    free(e->key);
    free(e->ext_note);
    larder_entry_clear(&e->e);
}

void larder_bundle_manifest_free(larder_bundle_manifest_t *m)
{
    for (size_t i = 0; i < m->nentries; i++)
        free_entry(&m->entries[i]);
    for (size_t i = 0; i < m->nmeta; i++) {
        free(m->meta[i].key);
        free(m->meta[i].val);
    }
    free(m->entries);
    free(m->meta);
    free(m->blobs);
    m->entries = NULL;
    m->meta = NULL;
    m->blobs = NULL;
    m->nentries = m->nmeta = m->nblobs = 0;
}

static int blob_cmp(const void *a, const void *b)
{
    return strcmp(((const larder_bundle_blob_t *)a)->digest, ((const larder_bundle_blob_t *)b)->digest);
}

larder_bundle_blob_t *larder_bundle_find_blob(larder_bundle_manifest_t *m, const char *digest)
{
    larder_bundle_blob_t k;
    snprintf(k.digest, sizeof(k.digest), "%s", digest);
    return m->nblobs ? bsearch(&k, m->blobs, m->nblobs, sizeof(k), blob_cmp) : NULL;
}

/* ---- writing ---- */

char *larder_bundle_header_text(const char *pin_set, uint64_t created, size_t nentries, size_t nblobs,
                                uint64_t blob_bytes)
{
    json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:I, s:I, s:I, s:I}", "format", LARDER_BUNDLE_FORMAT, "version",
                          LARDER_BUNDLE_VERSION, "larder", LARDER_VERSION_STR, "pin_set", pin_set, "created",
                          (json_int_t)created, "entries", (json_int_t)nentries, "blobs", (json_int_t)nblobs,
                          "blob_bytes", (json_int_t)blob_bytes);
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

json_t *larder_bundle_entry_json(int proto, const char *key, const larder_entry_t *e)
{
    json_t *o = json_pack("{s:s, s:s, s:b}", "protocol", larder_proto_name(proto), "key", key, "cached", e != NULL);
    if (!e)
        return o;
    json_object_set_new(o, "sha256", json_string(e->digest));
    json_object_set_new(o, "size", json_integer((json_int_t)e->size));
    const char *names[4] = {"url", "content_type", "etag", "last_modified"};
    const char *vals[4] = {e->url, e->content_type, e->etag, e->last_modified};
    for (int i = 0; i < 4; i++)
        if (vals[i] && *vals[i])
            json_object_set_new(o, names[i], json_string(vals[i]));
    json_object_set_new(o, "immutable", json_boolean(e->flags & LARDER_ENTRY_IMMUTABLE));
    json_object_set_new(o, "flags", json_integer((json_int_t)e->flags));
    json_object_set_new(o, "fetched_at", json_integer((json_int_t)e->fetched_at));
    json_object_set_new(o, "fresh_until", json_integer((json_int_t)e->fresh_until));
    return o;
}

void larder_bundle_entry_set_external(json_t *entry, const char *digest, uint64_t size, const char *note)
{
    json_t *x = json_pack("{s:s, s:I}", "sha256", digest, "size", (json_int_t)size);
    if (note && *note)
        json_object_set_new(x, "note", json_string(note));
    json_object_set_new(entry, "external", x);
}

json_t *larder_bundle_meta_json(int proto, const char *key, const char *val, size_t len)
{
    json_t *v = memchr(val, 0, len) ? NULL : json_stringn(val, len); /* NULL: not UTF-8 text */
    json_t *o = json_pack("{s:s, s:s}", "protocol", larder_proto_name(proto), "key", key);
    if (v) {
        json_object_set_new(o, "value", v);
    } else {
        size_t n = 4 * ((len + 2) / 3) + 1;
        unsigned char *b64 = malloc(n);
        if (b64) {
            EVP_EncodeBlock(b64, (const unsigned char *)val, (int)len);
            json_object_set_new(o, "value_base64", json_string((char *)b64));
            free(b64);
        }
    }
    return o;
}

/* ---- parsing the documents ---- */

static int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int larder_bundle_parse_header(const char *text, size_t len, larder_bundle_manifest_t *m, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return errf(err, errlen, "%s is not a JSON object (%s): not a larder bundle", LARDER_BUNDLE_HEADER, je.text);
    }
    const char *fmt = json_string_value(json_object_get(j, "format"));
    json_t *ver = json_object_get(j, "version");
    const char *lv = json_string_value(json_object_get(j, "larder"));
    const char *set = json_string_value(json_object_get(j, "pin_set"));
    int r = 0;
    if (!fmt || strcmp(fmt, LARDER_BUNDLE_FORMAT) != 0)
        r = errf(err, errlen, "%s does not say format \"%s\": not a larder bundle", LARDER_BUNDLE_HEADER,
                 LARDER_BUNDLE_FORMAT);
    else if (!json_is_integer(ver))
        r = errf(err, errlen, "%s has no format version", LARDER_BUNDLE_HEADER);
    else if (json_integer_value(ver) != LARDER_BUNDLE_VERSION)
        r = errf(err, errlen,
                 "bundle format version %" JSON_INTEGER_FORMAT " (written by larder %.30s) is not supported: this "
                 "larder (%s) reads version %d",
                 json_integer_value(ver), lv ? lv : "?", LARDER_VERSION_STR, LARDER_BUNDLE_VERSION);
    else if (!set || !larder_pin_set_name_ok(set, strlen(set)))
        r = errf(err, errlen, "%s names no valid pin set", LARDER_BUNDLE_HEADER);
    if (r == 0) {
        m->version = (int)json_integer_value(ver);
        snprintf(m->larder, sizeof(m->larder), "%s", lv && text_ok(lv, strlen(lv), 30) ? lv : "?");
        snprintf(m->pin_set, sizeof(m->pin_set), "%s", set);
        json_int_t c = json_integer_value(json_object_get(j, "created"));
        m->created = c > 0 ? (uint64_t)c : 0;
    }
    json_decref(j);
    return r;
}

static int opt_string(json_t *o, const char *name, char **out, const char *where, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    if (!s || !text_ok(s, strlen(s), MAX_STR) || strlen(s) != json_string_length(v))
        return errf(err, errlen, "manifest entry %s: \"%s\" is not a printable string of at most %d bytes", where,
                    name, MAX_STR);
    *out = strdup(s);
    return 0;
}

static int opt_uint(json_t *o, const char *name, uint64_t *out, const char *where, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, name);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return errf(err, errlen, "manifest entry %s: \"%s\" is not a non-negative integer", where, name);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* "external": {"sha256", "size", "note"}: the entry's data outside the blob store, as member external/<i> */
static int parse_external(json_t *x, larder_bundle_entry_t *be, const char *where, char *err, size_t errlen)
{
    const char *d = json_string_value(json_object_get(x, "sha256"));
    json_t *sz = json_object_get(x, "size"), *note = json_object_get(x, "note");
    if (!d || !larder_is_sha256_hex(d))
        return errf(err, errlen, "manifest entry %s: \"external\" has no valid \"sha256\"", where);
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
        return errf(err, errlen, "manifest entry %s: \"external\" has no valid \"size\"", where);
    if (note && !json_is_null(note)) {
        const char *n = json_string_value(note);
        if (!n || strlen(n) != json_string_length(note) || !text_ok(n, strlen(n), LARDER_BUNDLE_NOTE_MAX))
            return errf(err, errlen, "manifest entry %s: \"external\" has a \"note\" that is not a printable string "
                                     "of at most %d bytes",
                        where, LARDER_BUNDLE_NOTE_MAX);
        be->ext_note = strdup(n);
    }
    memcpy(be->ext.digest, d, LARDER_SHA256_HEX);
    be->ext.size = (uint64_t)json_integer_value(sz);
    be->has_external = 1;
    return 0;
}

static int parse_entry(json_t *o, size_t i, larder_bundle_entry_t *be, char *err, size_t errlen)
{
    char where[96];
    snprintf(where, sizeof(where), "#%zu", i);
    if (!json_is_object(o))
        return errf(err, errlen, "manifest entry %s is not an object", where);
    const char *pn = json_string_value(json_object_get(o, "protocol"));
    json_t *kv = json_object_get(o, "key");
    const char *key = json_string_value(kv);
    if (!be)
        return errf(err, errlen, "out of memory");
    if (!pn || (be->proto = larder_proto_from_name(pn)) < 0)
        return errf(err, errlen, "manifest entry %s: unknown protocol \"%.40s\"", where, pn ? pn : "");
    if (!key || strlen(key) != json_string_length(kv) || !text_ok(key, strlen(key), LARDER_BUNDLE_KEY_MAX))
        return errf(err, errlen, "manifest entry %s: the key is missing, longer than %d bytes or not printable", where,
                    LARDER_BUNDLE_KEY_MAX);
    be->key = strdup(key);
    snprintf(where, sizeof(where), "%s %.60s%s", pn, key, strlen(key) > 60 ? "..." : "");
    json_t *cached = json_object_get(o, "cached");
    if (cached && !json_is_boolean(cached))
        return errf(err, errlen, "manifest entry %s: \"cached\" is not a boolean", where);
    be->cached = !cached || json_is_true(cached);
    if (!be->cached)
        return json_object_get(o, "external") ? errf(err, errlen, "manifest entry %s: not cached, with external data",
                                                     where)
                                              : 0;
    const char *d = json_string_value(json_object_get(o, "sha256"));
    if (!d || !larder_is_sha256_hex(d))
        return errf(err, errlen, "manifest entry %s: \"sha256\" is not 64 lower-case hex digits", where);
    memcpy(be->e.digest, d, LARDER_SHA256_HEX);
    json_t *sz = json_object_get(o, "size");
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
        return errf(err, errlen, "manifest entry %s: \"size\" is not a non-negative integer", where);
    be->e.size = (uint64_t)json_integer_value(sz);
    uint64_t flags = 0;
    json_t *ext = json_object_get(o, "external");
    if (opt_uint(o, "fetched_at", &be->e.fetched_at, where, err, errlen) < 0 ||
        opt_uint(o, "fresh_until", &be->e.fresh_until, where, err, errlen) < 0 ||
        opt_uint(o, "flags", &flags, where, err, errlen) < 0 ||
        opt_string(o, "url", &be->e.url, where, err, errlen) < 0 ||
        opt_string(o, "content_type", &be->e.content_type, where, err, errlen) < 0 ||
        opt_string(o, "etag", &be->e.etag, where, err, errlen) < 0 ||
        opt_string(o, "last_modified", &be->e.last_modified, where, err, errlen) < 0)
        return -1;
    if (json_is_object(ext)) {
        if (parse_external(ext, be, where, err, errlen) < 0)
            return -1;
    } else if (ext && !(json_is_integer(ext) && json_integer_value(ext) == 0)) {
        return errf(err, errlen, "manifest entry %s keeps data outside the blob store without an \"external\" member",
                    where);
    }
    json_t *imm = json_object_get(o, "immutable");
    if (imm && !json_is_boolean(imm))
        return errf(err, errlen, "manifest entry %s: \"immutable\" is not a boolean", where);
    be->e.flags = (uint32_t)(flags & LARDER_ENTRY_IMMUTABLE);
    if (imm)
        be->e.flags = json_is_true(imm) ? LARDER_ENTRY_IMMUTABLE : 0;
    return 0;
}

static int parse_meta(json_t *o, size_t i, larder_bundle_meta_t *mm, char *err, size_t errlen)
{
    if (!json_is_object(o))
        return errf(err, errlen, "manifest record #%zu is not an object", i);
    const char *pn = json_string_value(json_object_get(o, "protocol"));
    json_t *kv = json_object_get(o, "key");
    const char *key = json_string_value(kv);
    if (!pn || (mm->proto = larder_proto_from_name(pn)) < 0)
        return errf(err, errlen, "manifest record #%zu: unknown protocol \"%.40s\"", i, pn ? pn : "");
    if (!key || strlen(key) != json_string_length(kv) || !text_ok(key, strlen(key), LARDER_BUNDLE_KEY_MAX))
        return errf(err, errlen, "manifest record #%zu: the key is missing, too long or not printable", i);
    mm->key = strdup(key);
    json_t *v = json_object_get(o, "value"), *b = json_object_get(o, "value_base64");
    if (json_is_string(v) && json_string_length(v) <= LARDER_BUNDLE_META_MAX) {
        mm->len = json_string_length(v);
        mm->val = malloc(mm->len + 1);
        memcpy(mm->val, json_string_value(v), mm->len);
        mm->val[mm->len] = 0;
        return 0;
    }
    const char *s = json_string_value(b);
    size_t sl = s ? strlen(s) : 0;
    if (!s || sl % 4 || sl / 4 * 3 > LARDER_BUNDLE_META_MAX)
        return errf(err, errlen, "manifest record #%zu (%s %.60s): no \"value\" or valid \"value_base64\"", i, pn,
                    key);
    mm->val = malloc(sl / 4 * 3 + 1);
    int n = EVP_DecodeBlock((unsigned char *)mm->val, (const unsigned char *)s, (int)sl);
    if (n < 0) {
        return errf(err, errlen, "manifest record #%zu (%s %.60s): \"value_base64\" is not base64", i, pn, key);
    }
    while (n > 0 && sl && s[sl - 1] == '=') { /* EVP_DecodeBlock counts the padding as zero bytes */
        n--;
        sl--;
    }
    mm->len = (size_t)n;
    mm->val[n] = 0;
    return 0;
}

typedef struct ekey {
    int proto;
    const char *key;
} ekey_t;

static int ekey_cmp(const void *a, const void *b)
{
    const ekey_t *x = a, *y = b;
    return x->proto != y->proto ? (x->proto < y->proto ? -1 : 1) : strcmp(x->key, y->key);
}

/* distinct digests, each with one size; no (protocol, key) twice */
static int index_manifest(larder_bundle_manifest_t *m, char *err, size_t errlen)
{
    ekey_t *keys = malloc((m->nentries + 1) * sizeof(*keys));
    m->blobs = malloc((m->nentries + 1) * sizeof(*m->blobs));
    if (!keys || !m->blobs) {
        free(keys);
        return errf(err, errlen, "out of memory reading the manifest");
    }
    size_t nb = 0;
    m->nexternal = 0;
    m->external_bytes = 0;
    for (size_t i = 0; i < m->nentries; i++) {
        keys[i].proto = m->entries[i].proto;
        keys[i].key = m->entries[i].key;
        if (m->entries[i].has_external) {
            m->entries[i].ext.entry = i + 1;
            m->nexternal++;
            m->external_bytes += m->entries[i].ext.size;
        }
        if (m->entries[i].cached) {
            memcpy(m->blobs[nb].digest, m->entries[i].e.digest, LARDER_SHA256_HEX);
            m->blobs[nb].size = m->entries[i].e.size;
            m->blobs[nb].seen = 0;
            m->blobs[nb].entry = 0;
            nb++;
        }
    }
    int r = 0;
    qsort(keys, m->nentries, sizeof(*keys), ekey_cmp);
    for (size_t i = 1; i < m->nentries && r == 0; i++)
        if (ekey_cmp(&keys[i - 1], &keys[i]) == 0)
            r = errf(err, errlen, "manifest lists %s %.80s twice", larder_proto_name(keys[i].proto), keys[i].key);
    free(keys);
    qsort(m->blobs, nb, sizeof(*m->blobs), blob_cmp);
    size_t out = 0;
    m->blob_bytes = 0;
    for (size_t i = 0; i < nb && r == 0; i++) {
        if (out && strcmp(m->blobs[out - 1].digest, m->blobs[i].digest) == 0) {
            if (m->blobs[out - 1].size != m->blobs[i].size)
                r = errf(err, errlen, "manifest gives blob %s two sizes", m->blobs[i].digest);
            continue;
        }
        m->blobs[out++] = m->blobs[i];
        m->blob_bytes += m->blobs[i].size;
    }
    m->nblobs = out;
    return r;
}

int larder_bundle_parse_manifest(const char *text, size_t len, const char *pin_set, larder_bundle_manifest_t *m,
                                 char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return errf(err, errlen, "%s is not a JSON object (line %d: %s)", LARDER_BUNDLE_MANIFEST, je.line, je.text);
    }
    int r = 0;
    const char *set = json_string_value(json_object_get(j, "pin_set"));
    json_t *ents = json_object_get(j, "entries"), *meta = json_object_get(j, "meta");
    if (!set || (pin_set && strcmp(set, pin_set) != 0))
        r = errf(err, errlen, "%s names pin set \"%.64s\", %s names \"%s\"", LARDER_BUNDLE_MANIFEST, set ? set : "",
                 LARDER_BUNDLE_HEADER, pin_set ? pin_set : "");
    else if (!json_is_array(ents) || json_array_size(ents) > MAX_ENTRIES)
        r = errf(err, errlen, "%s has no \"entries\" list (or more than %d)", LARDER_BUNDLE_MANIFEST, MAX_ENTRIES);
    else if (meta && (!json_is_array(meta) || json_array_size(meta) > MAX_META))
        r = errf(err, errlen, "%s: \"meta\" is not a list (of at most %d records)", LARDER_BUNDLE_MANIFEST, MAX_META);
    if (r == 0) {
        m->entries = calloc(json_array_size(ents) + 1, sizeof(*m->entries));
        m->meta = calloc(json_array_size(meta) + 1, sizeof(*m->meta));
        if (!m->entries || !m->meta)
            r = errf(err, errlen, "out of memory reading the manifest");
    }
    for (size_t i = 0; r == 0 && i < json_array_size(ents); i++) {
        r = parse_entry(json_array_get(ents, i), i, &m->entries[i], err, errlen);
        m->nentries = i + 1;
    }
    for (size_t i = 0; r == 0 && i < json_array_size(meta); i++) {
        r = parse_meta(json_array_get(meta, i), i, &m->meta[i], err, errlen);
        m->nmeta = i + 1;
    }
    if (r == 0)
        r = index_manifest(m, err, errlen);
    json_decref(j);
    return r;
}

/* ---- the reader ---- */

const char *larder_bundle_error(const larder_bundle_reader_t *r) { return r->tar.error; }

int larder_bundle_fail(larder_bundle_reader_t *r, const char *fmt, ...)
{
    if (r->tar.error[0]) /* the first message wins */
        return larder_tar_fail(&r->tar, "%s", "");
    char msg[sizeof(r->tar.error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return larder_tar_fail(&r->tar, "%s", msg);
}

/* "blob <hex>", or "external/<n> (the data of git m/...)": a member in messages */
static void member_what(const larder_bundle_reader_t *r, const larder_bundle_blob_t *b, char *out, size_t n)
{
    if (!b->entry) {
        snprintf(out, n, "blob %s", b->digest);
        return;
    }
    const larder_bundle_entry_t *e = &r->m.entries[b->entry - 1];
    snprintf(out, n, "%s%zu (the data of %s %.80s)", LARDER_BUNDLE_EXTERNAL_PREFIX, b->entry - 1,
             larder_proto_name(e->proto), e->key);
}

/* the external member named by "<index>" (decimal, no leading zeros), or NULL */
static larder_bundle_blob_t *external_member(larder_bundle_reader_t *r, const char *s)
{
    size_t i = 0, n = strlen(s);
    if (n == 0 || n > 9 || (s[0] == '0' && n > 1))
        return NULL;
    for (size_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return NULL;
        i = i * 10 + (size_t)(s[k] - '0');
    }
    return i < r->m.nentries && r->m.entries[i].has_external ? &r->m.entries[i].ext : NULL;
}

static int on_begin(void *ctx, const char *name, uint64_t size)
{
    larder_bundle_reader_t *r = ctx;
    int idx = r->members++;
    if (idx == 0) {
        if (strcmp(name, LARDER_BUNDLE_HEADER) != 0)
            return larder_bundle_fail(r, "the first member is %.100s, not %s: not a larder bundle", name,
                                      LARDER_BUNDLE_HEADER);
        if (size > LARDER_BUNDLE_HEADER_MAX)
            return larder_bundle_fail(r, "%s is %" PRIu64 " bytes (at most %zu)", name, size, LARDER_BUNDLE_HEADER_MAX);
        r->member = 1;
    } else if (idx == 1) {
        if (strcmp(name, LARDER_BUNDLE_MANIFEST) != 0)
            return larder_bundle_fail(r, "the second member is %.100s, not %s", name, LARDER_BUNDLE_MANIFEST);
        if (size > LARDER_BUNDLE_MANIFEST_MAX)
            return larder_bundle_fail(r, "%s is %" PRIu64 " bytes (at most %llu)", name, size,
                                      (unsigned long long)LARDER_BUNDLE_MANIFEST_MAX);
        r->member = 2;
    } else {
        size_t pl = strlen(LARDER_BUNDLE_BLOB_PREFIX), xl = strlen(LARDER_BUNDLE_EXTERNAL_PREFIX);
        const char *d = name + pl;
        larder_bundle_blob_t *b = NULL;
        char what[200];
        if (strncmp(name, LARDER_BUNDLE_EXTERNAL_PREFIX, xl) == 0) {
            b = external_member(r, name + xl);
            if (!b)
                return larder_bundle_fail(r, "member %.100s is not named by the manifest", name);
        } else if (strncmp(name, LARDER_BUNDLE_BLOB_PREFIX, pl) != 0 || !larder_is_sha256_hex(d)) {
            return larder_bundle_fail(r, "unexpected member %.100s (a bundle holds %s, %s, %s<sha256> and %s<n> only)",
                                      name, LARDER_BUNDLE_HEADER, LARDER_BUNDLE_MANIFEST, LARDER_BUNDLE_BLOB_PREFIX,
                                      LARDER_BUNDLE_EXTERNAL_PREFIX);
        } else if (!(b = larder_bundle_find_blob(&r->m, d))) {
            return larder_bundle_fail(r, "blob %s is not named by the manifest", d);
        }
        member_what(r, b, what, sizeof(what));
        if (b->seen)
            return larder_bundle_fail(r, "%s appears twice", what);
        if (size != b->size)
            return larder_bundle_fail(r, "%s has %" PRIu64 " bytes, the manifest says %" PRIu64, what, size, b->size);
        r->cur = b;
        r->cur_have = 0;
        r->member = 3;
        EVP_MD_CTX *md = r->md;
        if (!md && !(r->md = md = EVP_MD_CTX_new()))
            return larder_bundle_fail(r, "out of memory");
        EVP_DigestInit_ex(md, larder_sha256_md(), NULL);
        if (r->sink.blob_begin && r->sink.blob_begin(r->sink.ctx, r, b))
            return larder_bundle_fail(r, "%s refused", what);
        return 0;
    }
    r->len = 0;
    r->cap = (size_t)size + 1;
    free(r->buf);
    r->buf = malloc(r->cap);
    if (!r->buf)
        return larder_bundle_fail(r, "out of memory");
    return 0;
}

static int on_data(void *ctx, const unsigned char *p, size_t n)
{
    larder_bundle_reader_t *r = ctx;
    if (r->member == 3) {
        EVP_DigestUpdate(r->md, p, n);
        r->cur_have += n;
        r->bytes_done += n;
        if (r->sink.blob_data && r->sink.blob_data(r->sink.ctx, r, p, n)) {
            char what[200];
            member_what(r, r->cur, what, sizeof(what));
            return larder_bundle_fail(r, "writing %s failed", what);
        }
        return 0;
    }
    memcpy(r->buf + r->len, p, n); /* the tar reader never passes more than the member's size */
    r->len += n;
    return 0;
}

static int on_end(void *ctx)
{
    larder_bundle_reader_t *r = ctx;
    char err[400];
    int m = r->member;
    r->member = 0;
    if (m == 1) {
        if (larder_bundle_parse_header(r->buf, r->len, &r->m, err, sizeof(err)) < 0)
            return larder_bundle_fail(r, "%s", err);
        return 0;
    }
    if (m == 2) {
        int rc = larder_bundle_parse_manifest(r->buf, r->len, r->m.pin_set, &r->m, err, sizeof(err));
        free(r->buf);
        r->buf = NULL;
        if (rc < 0)
            return larder_bundle_fail(r, "%s", err);
        r->have_manifest = 1;
        if (r->sink.manifest && r->sink.manifest(r->sink.ctx, r, &r->m))
            return larder_bundle_fail(r, "the bundle was refused");
        return 0;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[LARDER_SHA256_HEX];
    EVP_DigestFinal_ex(r->md, md, &mdlen);
    larder_hex(md, 32, hex);
    char what[200];
    member_what(r, r->cur, what, sizeof(what));
    if (strcmp(hex, r->cur->digest) != 0)
        return larder_bundle_fail(r, "%s is corrupt: its %" PRIu64 " bytes hash to %s (the bundle was damaged or "
                                     "tampered with)",
                                  what, r->cur->size, hex);
    r->cur->seen = 1;
    r->blobs_done++;
    if (r->sink.blob_end && r->sink.blob_end(r->sink.ctx, r, r->cur))
        return larder_bundle_fail(r, "%s could not be stored", what);
    r->cur = NULL;
    return 0;
}

void larder_bundle_reader_init(larder_bundle_reader_t *r, const larder_bundle_sink_t *sink)
{
    memset(r, 0, sizeof(*r));
    if (sink)
        r->sink = *sink;
    larder_tar_cb_t cb = {on_begin, on_data, on_end, r};
    larder_tar_reader_init(&r->tar, &cb);
}

void larder_bundle_reader_free(larder_bundle_reader_t *r)
{
    larder_tar_reader_free(&r->tar);
    larder_bundle_manifest_free(&r->m);
    free(r->buf);
    r->buf = NULL;
    EVP_MD_CTX_free(r->md);
    r->md = NULL;
}

int larder_bundle_feed(larder_bundle_reader_t *r, const void *p, size_t n)
{
    return larder_tar_feed(&r->tar, p, n);
}

int larder_bundle_finish(larder_bundle_reader_t *r)
{
    if (r->tar.error[0])
        return -1;
    if (!r->have_manifest)
        return larder_bundle_fail(r, "the bundle is truncated after %" PRIu64 " bytes: %s", r->tar.offset,
                                  r->members == 0 ? "no larder-bundle.json (an empty or non-tar file?)"
                                                  : "the manifest is incomplete");
    if (!larder_tar_done(&r->tar)) {
        char what[200];
        if (r->cur) {
            member_what(r, r->cur, what, sizeof(what));
            return larder_bundle_fail(r, "the bundle is truncated after %" PRIu64 " bytes, in %s (%" PRIu64
                                         " of %" PRIu64 " bytes)",
                                      r->tar.offset, what, r->cur_have, r->cur->size);
        }
        return larder_bundle_fail(r, "the bundle is truncated after %" PRIu64 " bytes: no end-of-archive marker",
                                  r->tar.offset);
    }
    for (size_t i = 0; i < r->m.nblobs; i++)
        if (!r->m.blobs[i].seen)
            return larder_bundle_fail(r, "the bundle lacks blob %s named by the manifest (%" PRIu64 " of %zu blobs "
                                         "present)",
                                      r->m.blobs[i].digest, r->blobs_done, r->m.nblobs);
    for (size_t i = 0; i < r->m.nentries; i++)
        if (r->m.entries[i].has_external && !r->m.entries[i].ext.seen)
            return larder_bundle_fail(r, "the bundle lacks member %s%zu, the data of %s %.100s named by the manifest",
                                      LARDER_BUNDLE_EXTERNAL_PREFIX, i, larder_proto_name(r->m.entries[i].proto),
                                      r->m.entries[i].key);
    return 0;
}
