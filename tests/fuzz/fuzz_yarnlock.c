/* fuzz_yarnlock.c - the yarn.lock (v1) reader and the raw-input detection and line helpers (seedinput.c, with every
 * module's detector), on arbitrary bytes. Each line the reader returns must be a seed reference the npm seed
 * expander accepts; a failure names a line that exists. */
#include "module.h"
#include "npm.h"
#include "seedinput.h"

#include <stdlib.h>
#include <string.h>

static unsigned nlines;

static void on_skip(void *ctx, unsigned line, const char *what, const char *why, int failed)
{
    (void)ctx, (void)what, (void)failed;
    if (line == 0 || line > nlines || !why[0])
        abort();
}

static int on_line(void *ctx, unsigned line, char *s)
{
    (void)ctx;
    if (line == 0 || line > nlines || !*s || s[0] == ' ' || s[0] == '#')
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *s = (const char *)data;
    nlines = 1;
    for (size_t i = 0; i < size; i++)
        nlines += s[i] == '\n';
    char **lines = NULL, err[300];
    unsigned errline = 0;
    long n = larder_npm_yarnlock_lines(s, size, &lines, on_skip, NULL, &errline, err, sizeof(err));
    if (n < 0 && errline > nlines)
        abort();
    for (long i = 0; i < n; i++) {
        char name[256], ver[128], integ[300], perr[300];
        if (larder_npm_parse_seed_ref(lines[i], name, sizeof(name), ver, sizeof(ver), integ, sizeof(integ), perr,
                                      sizeof(perr)) < 0)
            abort();
        free(lines[i]);
    }
    free(lines);
    const char *kind;
    char msg[512];
    if (larder_seed_input_detect(s, size, &kind, msg, sizeof(msg)) == 0 && !kind)
        abort();
    larder_text_each_line(s, size, on_line, NULL);
    return 0;
}
