/* test_reqhead.c - request framing read from the head: ambiguous Content-Length / Transfer-Encoding combinations
 * are recognised, plain ones give the body size, partial and broken heads are told apart. */
#include "reqhead.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int framing(const char *head, uint64_t *cl)
{
    larder_reqhead_t h;
    int r = larder_reqhead_parse(head, strlen(head), &h);
    if (r <= 0)
        return -100 + r;
    if (cl)
        *cl = h.content_length;
    return h.framing;
}

static void test_framing(void)
{
    uint64_t cl = 0;
    CHECK(framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL) == LARDER_BODY_NONE);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 15\r\n\r\n", &cl) == LARDER_BODY_LENGTH && cl == 15);
    CHECK(framing("POST /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n", &cl) == LARDER_BODY_LENGTH && cl == 0);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", &cl) == LARDER_BODY_LENGTH &&
          cl == 7);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length:   9\r\n\r\n", &cl) == LARDER_BODY_LENGTH && cl == 9);
    /* trailing blanks stay in the value with this parser, and h2o refuses such a length too */
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 9  \r\n\r\n", NULL) == LARDER_BODY_BAD_LENGTH);
    CHECK(framing("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", NULL) == LARDER_BODY_CHUNKED);
    /* ambiguous: h2o 2.2.5 would take the first length, or the chunked encoding, silently */
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", NULL) == LARDER_BODY_AMBIGUOUS);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 30\r\n\r\n", NULL) ==
          LARDER_BODY_AMBIGUOUS);
    CHECK(framing("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", NULL) ==
          LARDER_BODY_AMBIGUOUS);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 5\r\nTRANSFER-ENCODING: chunked\r\n\r\n", NULL) ==
          LARDER_BODY_AMBIGUOUS);
    CHECK(framing("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", NULL) ==
          LARDER_BODY_AMBIGUOUS);
    /* not a number: h2o answers 400 only when it is the first Content-Length */
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", NULL) == LARDER_BODY_BAD_LENGTH);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: x\r\n\r\n", NULL) ==
          LARDER_BODY_BAD_LENGTH);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", NULL) == LARDER_BODY_BAD_LENGTH);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: \r\n\r\n", NULL) == LARDER_BODY_BAD_LENGTH);
    CHECK(framing("POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", NULL) == LARDER_BODY_BAD_LENGTH);
}

static void test_parse(void)
{
    larder_reqhead_t h;
    const char *req = "POST /-/api/v1/jobs?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t0k\r\n"
                      "authorization: Bearer other\r\nContent-Length: 3\r\n\r\nabc";
    int r = larder_reqhead_parse(req, strlen(req), &h);
    CHECK(r == (int)strlen(req) - 3);
    CHECK(h.method_len == 4 && memcmp(h.method, "POST", 4) == 0);
    CHECK(h.path_len == 18 && memcmp(h.path, "/-/api/v1/jobs?x=1", 18) == 0);
    CHECK(h.authorization && h.authorization_len == 10 && memcmp(h.authorization, "Bearer t0k", 10) == 0);
    /* a head that arrives in pieces: only the new bytes are searched, the result is the same */
    const char *get = "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n";
    CHECK(larder_reqhead_parse_more(get, 20, 0, &h) == -2);
    CHECK(larder_reqhead_parse_more(get, 40, 20, &h) == -2);
    CHECK(larder_reqhead_parse_more(get, strlen(get), 40, &h) == (int)strlen(get) &&
          h.framing == LARDER_BODY_AMBIGUOUS);
    /* partial heads wait, garbage and HTTP/2 prefaces are not HTTP/1 heads */
    CHECK(larder_reqhead_parse("GET / HTTP/1.1\r\nHost: a\r\n", 25, &h) == -2);
    CHECK(larder_reqhead_parse("", 0, &h) == -2);
    CHECK(larder_reqhead_parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24, &h) == -1);
    CHECK(larder_reqhead_parse("\x16\x03\x01\x02\x00", 5, &h) == -1);
    /* only LARDER_REQHEAD_MAX bytes are looked at: a longer head stays incomplete, as in h2o */
    size_t n = LARDER_REQHEAD_MAX + 100;
    char *big = malloc(n);
    if (big) {
        snprintf(big, n, "GET / HTTP/1.1\r\nX: ");
        memset(big + 19, 'a', n - 19);
        CHECK(larder_reqhead_parse(big, n, &h) == -2);
        free(big);
    }
}

int main(void)
{
    test_framing();
    test_parse();
    if (failures) {
        fprintf(stderr, "test_reqhead: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_reqhead: ok\n");
    return 0;
}
