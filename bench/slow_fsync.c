/* LD_PRELOAD shim for bench/slow_disk.py: fsync and fdatasync of a descriptor whose path contains
 * $UPLINK_SLOW_FSYNC take $UPLINK_SLOW_FSYNC_MS milliseconds longer (a slow SD card); the rest goes to libc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void maybe_delay(int fd) {
    const char *pattern = getenv("UPLINK_SLOW_FSYNC");
    if (pattern == NULL || *pattern == 0) return;
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t length = readlink(link, target, sizeof target - 1);
    if (length < 0) return;
    target[length] = 0;
    if (strstr(target, pattern) == NULL) return;
    const char *ms = getenv("UPLINK_SLOW_FSYNC_MS");
    long delay = ms ? atol(ms) : 50;
    struct timespec pause = { delay / 1000, (delay % 1000) * 1000000L };
    while (nanosleep(&pause, &pause) != 0) {}
}

int fsync(int fd) {
    maybe_delay(fd);
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd) {
    maybe_delay(fd);
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
