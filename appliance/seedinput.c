/* seedinput.c - raw seed inputs: a pasted requirements file, lockfile or list, turned into a seed spec.
 *
 * The modules declare the kinds they read (module.h: seed_inputs); this file finds the kind of a body posted to
 * /-/api/v1/jobs without ?kind= and runs the module's expander. Detection: the body is a seed spec when it parses
 * as a YAML mapping with pin_set or a known section (then a spec error is the answer, never another kind);
 * otherwise every kind's detect scores it, and the best wins when it is clear (at least DETECT_MIN, and
 * DETECT_MARGIN ahead of the next). The text helpers here are what line-list expanders share. */
#include "seedinput.h"
#include "module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define DETECT_MIN 50
#define DETECT_MARGIN 15

unsigned larder_text_line_of(const char *text, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    if (!nl || nl > len)
        return 0;
    unsigned line = 1;
    for (size_t i = 0; i + nl <= len; i++) {
        if (text[i] == '\n')
            line++;
        else if (memcmp(text + i, needle, nl) == 0)
            return line;
    }
    return 0;
}

int larder_text_each_line(const char *text, size_t len, int (*fn)(void *ctx, unsigned line, char *s), void *ctx)
{
    unsigned line = 0;
    size_t i = 0;
    char buf[4096];
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t n = end - i;
        line++;
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1; /* a line this long fits no kind: its head is what the report shows */
        memcpy(buf, text + i, n);
        buf[n] = 0;
        i = end + 1;
        for (size_t k = 0; k < n; k++) /* a comment: '#' at the start or after a blank */
            if (buf[k] == '#' && (k == 0 || buf[k - 1] == ' ' || buf[k - 1] == '\t')) {
                buf[k] = 0;
                n = k;
                break;
            }
        while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r'))
            buf[--n] = 0;
        char *s = buf;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            continue;
        int r = fn(ctx, line, s);
        if (r)
            return r;
    }
    return 0;
}

typedef struct score_ctx {
    int (*ok)(const char *s);
    unsigned n, good;
} score_ctx_t;

static int score_line(void *ctx, unsigned line, char *s)
{
    (void)line;
    score_ctx_t *c = ctx;
    c->n++;
    c->good += c->ok(s) ? 1U : 0U;
    return c->n >= 2000; /* a sample is enough */
}

int larder_text_line_score(const char *text, size_t len, int (*ok)(const char *s))
{
    score_ctx_t c = {ok, 0, 0};
    larder_text_each_line(text, len, score_line, &c);
    return c.n ? (int)(100 * c.good / c.n) : 0;
}

/* a YAML mapping whose keys include pin_set or a module's name: meant as a seed spec */
int larder_seed_input_is_spec(const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int spec = 0;
    if (!yaml_parser_initialize(&parser))
        return 0;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (yaml_parser_load(&parser, &doc)) {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root && root->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top && !spec; p++) {
                yaml_node_t *k = yaml_document_get_node(&doc, p->key);
                if (!k || k->type != YAML_SCALAR_NODE)
                    continue;
                const char *ks = (const char *)k->data.scalar.value;
                spec = strcmp(ks, "pin_set") == 0 || larder_proto_from_name(ks) >= 0;
            }
        }
        yaml_document_delete(&doc);
    } else {
        /* a spec with a syntax error further down: its first lines still say what it is */
        spec = strncmp(text, "pin_set:", len < 8 ? len : 8) == 0 && len >= 8;
    }
    yaml_parser_delete(&parser);
    return spec;
}

const larder_seed_input_t *larder_seed_input_find(const char *kind, int *proto)
{
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        for (const larder_seed_input_t *in = m->seed_inputs; in && in->kind; in++)
            if (strcmp(in->kind, kind) == 0) {
                *proto = p;
                return in;
            }
    }
    return NULL;
}

void larder_seed_input_kinds(char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = 0;
    o += (size_t)snprintf(out, outlen, "spec");
    for (int p = 0; p < larder_proto_count() && o < outlen; p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        for (const larder_seed_input_t *in = m->seed_inputs; in && in->kind && o < outlen; in++)
            o += (size_t)snprintf(out + o, outlen - o, ", %s", in->kind);
    }
}

int larder_seed_input_detect(const char *text, size_t len, const char **kind, char *msg, size_t msglen)
{
    if (larder_seed_input_is_spec(text, len)) {
        *kind = "spec";
        return 0;
    }
    struct cand {
        const char *kind;
        int score;
    } c[32];
    size_t n = 0;
    for (int p = 0; p < larder_proto_count(); p++) {
        const larder_protocol_t *m = larder_protocol_get(p);
        for (const larder_seed_input_t *in = m->seed_inputs; in && in->kind && n < 32; in++) {
            int s = in->detect ? in->detect(text, len) : 0;
            if (s >= DETECT_MIN) {
                size_t k = n++;
                for (; k > 0 && c[k - 1].score < s; k--)
                    c[k] = c[k - 1];
                c[k].kind = in->kind;
                c[k].score = s;
            }
        }
    }
    *kind = NULL;
    if (n == 0) {
        char kinds[512];
        larder_seed_input_kinds(kinds, sizeof(kinds));
        snprintf(msg, msglen, "cannot tell what this is: not a seed spec, and no kind fits it; pass kind= (one of %s)",
                 kinds);
        return -1;
    }
    if (n > 1 && c[0].score - c[1].score < DETECT_MARGIN) {
        size_t o = (size_t)snprintf(msg, msglen, "this could be any of");
        for (size_t i = 0; i < n && c[0].score - c[i].score < DETECT_MARGIN && o < msglen; i++)
            o += (size_t)snprintf(msg + o, msglen - o, "%s %s", i ? "," : "", c[i].kind);
        if (o < msglen)
            snprintf(msg + o, msglen - o, ": pass kind= to say which");
        return -2;
    }
    *kind = c[0].kind;
    return 0;
}
