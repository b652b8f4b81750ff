/* test_history.c - the history's pure parts: range and step names, the window of a query (alignment, the kept
 * resolution, the steps allowed), the bucket records' format, and the upstream hold-off's backoff. */
#include "history.h"
#include "upstreams.h"

#include <string.h>

#include "check.h"

static void test_names(void)
{
    CHECK(larder_history_range("1h") == 3600);
    CHECK(larder_history_range("24h") == 86400);
    CHECK(larder_history_range("7d") == 7 * 86400ULL);
    CHECK(larder_history_range("30d") == 30 * 86400ULL);
    CHECK(larder_history_range("90d") == 90 * 86400ULL);
    CHECK(larder_history_range("2h") == 0);
    CHECK(larder_history_range("") == 0);
    CHECK(larder_history_range(NULL) == 0);
    CHECK(larder_history_range("1m") == 0); /* a step name is not a range */
    CHECK(larder_history_step("1m") == 60);
    CHECK(larder_history_step("5m") == 300);
    CHECK(larder_history_step("15m") == 900);
    CHECK(larder_history_step("1h") == 3600);
    CHECK(larder_history_step("6h") == 21600);
    CHECK(larder_history_step("1d") == 86400);
    CHECK(larder_history_step("24h") == 0);
    CHECK(larder_history_step("1M") == 0);
}

static void test_window(void)
{
    uint64_t start, end, res;
    size_t n;
    char allowed[64];
    /* 24h in 5m steps at 12:03:20: the last step is 12:00-12:05, 288 of them */
    uint64_t now = 1700000000ULL; /* 2023-11-14 22:13:20 UTC */
    CHECK(larder_history_window(now, 86400, 300, &start, &end, &n, &res, allowed, sizeof(allowed)) == 0);
    CHECK(end % 300 == 0 && end > now && end - now <= 300);
    CHECK(end - start == 86400 && n == 288 && res == 60);
    /* a time exactly on a step boundary starts a new step */
    CHECK(larder_history_window(1699999800ULL, 3600, 60, &start, &end, &n, &res, allowed, sizeof(allowed)) == 0);
    CHECK(end == 1699999860ULL && start == 1699996260ULL && n == 60);
    /* days are UTC days */
    CHECK(larder_history_window(now, 90 * 86400ULL, 86400, &start, &end, &n, &res, allowed, sizeof(allowed)) == 0);
    CHECK(end % 86400 == 0 && n == 90 && res == 3600);
    /* finer than the kept resolution: minute steps exist for a day only */
    CHECK(larder_history_window(now, 7 * 86400ULL, 300, &start, &end, &n, &res, allowed, sizeof(allowed)) < 0);
    CHECK(res == 3600);
    CHECK(strcmp(allowed, "1h, 6h, 1d") == 0);
    CHECK(larder_history_window(now, 7 * 86400ULL, 3600, &start, &end, &n, &res, allowed, sizeof(allowed)) == 0);
    CHECK(n == 168);
    /* coarser than the range */
    CHECK(larder_history_window(now, 3600, 21600, &start, &end, &n, &res, allowed, sizeof(allowed)) < 0);
    CHECK(strcmp(allowed, "1m, 5m, 15m, 1h") == 0);
    CHECK(larder_history_window(now, 86400, 86400, &start, &end, &n, &res, allowed, sizeof(allowed)) == 0);
    CHECK(n == 1);
    CHECK(larder_history_window(now, 0, 60, &start, &end, &n, &res, allowed, sizeof(allowed)) < 0);
    /* a small buffer for the allowed steps is not overrun */
    char tiny[5];
    CHECK(larder_history_window(now, 3600, 21600, &start, &end, &n, &res, tiny, sizeof(tiny)) < 0);
    CHECK(strlen(tiny) < sizeof(tiny));
}

static void test_records(void)
{
    uint64_t v[4] = {1, 0, 18446744073709551615ULL, 42}, w[4] = {0}, x[6] = {0};
    char buf[128];
    size_t l = larder_history_format(buf, sizeof(buf), v, 4);
    CHECK(l > 0 && strcmp(buf, "1 1 0 18446744073709551615 42") == 0);
    CHECK(larder_history_parse(buf, l, w, 4) == 0);
    CHECK(memcmp(v, w, sizeof(v)) == 0);
    /* parse adds: two records of the same bucket sum */
    CHECK(larder_history_parse("1 2 3", 5, w, 4) == 0);
    CHECK(w[0] == 3 && w[1] == 3 && w[3] == 42);
    /* fewer values than counters (an older record): the rest stay; more: the extra ones are skipped */
    CHECK(larder_history_parse(buf, l, x, 6) == 0 && x[3] == 42 && x[4] == 0);
    CHECK(larder_history_parse(buf, l, x, 2) == 0 && x[0] == 2);
    CHECK(larder_history_parse("1", 1, x, 2) == 0);
    /* malformed */
    CHECK(larder_history_parse("2 1 2", 5, x, 2) < 0);
    CHECK(larder_history_parse("1 -1", 4, x, 2) < 0);
    CHECK(larder_history_parse("1 x", 3, x, 2) < 0);
    CHECK(larder_history_parse("1  1", 4, x, 2) < 0);
    CHECK(larder_history_parse("1 1 ", 4, x, 2) < 0);
    CHECK(larder_history_parse("11 1", 4, x, 2) < 0);
    CHECK(larder_history_parse("1 99999999999999999999999", 25, x, 2) < 0);
    CHECK(larder_history_parse("", 0, x, 2) < 0);
    /* too small a buffer: 0, never a cut record */
    CHECK(larder_history_format(buf, 8, v, 4) == 0);
}

static void test_backoff(void)
{
    CHECK(larder_upstreams_backoff(0, 5, 60) == 5);
    CHECK(larder_upstreams_backoff(5, 5, 60) == 10);
    CHECK(larder_upstreams_backoff(40, 5, 60) == 60);
    CHECK(larder_upstreams_backoff(60, 5, 60) == 60);
    CHECK(larder_upstreams_backoff(0, 90, 60) == 60);
}

int main(void)
{
    test_names();
    test_window();
    test_records();
    test_backoff();
    if (failures)
        fprintf(stderr, "test_history: %d check(s) failed\n", failures);
    else
        fprintf(stderr, "test_history: all checks passed\n");
    return failures != 0;
}
