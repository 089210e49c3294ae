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

#endif
