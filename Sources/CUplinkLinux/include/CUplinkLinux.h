#ifndef UPLINK_CUPLINKLINUX_H
#define UPLINK_CUPLINKLINUX_H
// Linux interfaces Swift's Glibc module does not export (epoll, inotify, eventfd, signalfd, ptys, termios
// speeds), as swift-nio's CNIOLinux does.
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <termios.h>
#include <pty.h>
#include <fcntl.h>
#include <unistd.h>

static inline int uplink_ioctl_int(int fd, unsigned long request) { return ioctl(fd, request); }
static inline int uplink_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static inline int uplink_fcntl_setfl(int fd, int flags) { return fcntl(fd, F_SETFL, flags); }
static inline int uplink_fcntl_getfl(int fd) { return fcntl(fd, F_GETFL); }
static inline unsigned long uplink_TIOCEXCL(void) { return TIOCEXCL; }
static inline unsigned long uplink_TIOCNXCL(void) { return TIOCNXCL; }

// Process plugins: glibc declares posix_spawn_file_actions_addchdir_np (2.29+) only under _GNU_SOURCE, which
// Swift's Glibc module is not built with, so the child's working directory is set through this shim.
#include <spawn.h>
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *__restrict, const char *__restrict);
static inline int uplink_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}
// pipe2 is _GNU_SOURCE too; O_CLOEXEC at creation, so a child spawned meanwhile by another thread cannot
// inherit a plugin's pipe (it would hold it open and hide the plugin's end of file).
extern int pipe2(int fds[2], int flags);
static inline int uplink_pipe2_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

#endif
