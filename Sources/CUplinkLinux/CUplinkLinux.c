// Most of the module is its header; the GNU extensions Glibc's Swift module leaves out are defined here.
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CUplinkLinux.h"

int uplink_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int uplink_posix_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int uplink_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

void uplink_limit_malloc_arenas(int count) {
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
    if (getenv("MALLOC_ARENA_MAX") == NULL) mallopt(M_ARENA_MAX, count);
#else
    (void)count;
#endif
}
