/* heartbeat.h - the watchdog's question to a thread's loop ("are you still turning?") and the loop's answer.
 *
 * The main thread asks (larder_beat_ask stamps the time, when no question is outstanding) and then wakes the
 * thread by that thread's own means: a message through a worker's h2o multithread queue, curl_multi_wakeup for
 * the fetch thread. The thread answers from its loop (larder_beat_answer). So an answer proves the loop came
 * round and handled its wake-up channel, the one other threads rely on; a timer stamping the time would only
 * prove that the timer fires. A question that has waited longer than the watchdog's limit means the loop has not
 * turned since (larder_beat_waiting). One atomic; any thread may read it. */
#ifndef LARDER_HEARTBEAT_H
#define LARDER_HEARTBEAT_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

typedef struct larder_beat {
    _Atomic uint64_t asked; /* CLOCK_MONOTONIC ms of the outstanding question; 0: none */
} larder_beat_t;

static inline uint64_t larder_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* the watchdog: ask, unless a question is outstanding; 1 when asked (the caller then wakes the thread) */
static inline int larder_beat_ask(larder_beat_t *b, uint64_t now)
{
    uint64_t none = 0;
    return atomic_compare_exchange_strong(&b->asked, &none, now ? now : 1);
}

/* the thread, from its loop: answer the outstanding question, if any */
static inline void larder_beat_answer(larder_beat_t *b) { atomic_store(&b->asked, 0); }

/* how long the outstanding question has waited (0: none) */
static inline uint64_t larder_beat_waiting(larder_beat_t *b, uint64_t now)
{
    uint64_t a = atomic_load(&b->asked);
    return a && now > a ? now - a : 0;
}

#endif
