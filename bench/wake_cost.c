// What waking costs on this machine, apart from the agent: the same fixed work per unit (an escape-like pass over
// 1 MiB, about what the agent spends per 1,000-line request), back to back or with a sleep between units, as an
// agent that wakes once per answer behind a long link. Prints the CPU time per unit (getrusage).
//
//   gcc -O2 -o /tmp/wake_cost bench/wake_cost.c
//   taskset -c 1 /tmp/wake_cost 2000 0; taskset -c 1 /tmp/wake_cost 1000 2500   # units, sleep in us
//
// bench/RESULTS.md (2026-12-06) has the figures beside issue 17's latency runs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>
static unsigned char *buf, *out;
static size_t N = 1 << 20;  // 1 MiB working set, like the agent's per-request code and data
static unsigned long work(void) {
    unsigned long h = 0;
    for (size_t i = 0; i < N; i++) {  // an escape-like pass: read, branch, write
        unsigned char c = buf[i];
        if (c < 0x20 || c == '"') { out[i] = '\\'; h += 7; } else { out[i] = c; h += c; }
    }
    return h;
}
static double cpu(void) {
    struct rusage u; getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}
int main(int argc, char **argv) {
    int units = atoi(argv[1]); int sleep_us = atoi(argv[2]);
    buf = malloc(N); out = malloc(N);
    for (size_t i = 0; i < N; i++) buf[i] = (unsigned char)(i * 2654435761u >> 13);
    unsigned long h = 0; double start = cpu();
    for (int u = 0; u < units; u++) { h += work(); if (sleep_us) usleep(sleep_us); }
    double used = cpu() - start;
    printf("sleep %5d us: %.1f us CPU per unit (%lu)\n", sleep_us, used / units * 1e6, h & 1);
    return 0;
}
