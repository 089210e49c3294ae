#ifndef UPLINK_CUPLINKLINUX_H
#define UPLINK_CUPLINKLINUX_H
// Linux interfaces Swift's Glibc module does not export (epoll, inotify, eventfd, signalfd, ptys, termios
// speeds), as swift-nio's CNIOLinux does.
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/serial.h>
#include <sys/file.h>
#include <termios.h>
#include <pty.h>
#include <fcntl.h>
#include <unistd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

static inline int uplink_ioctl_int(int fd, unsigned long request) { return ioctl(fd, request); }
static inline int uplink_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static inline int uplink_fcntl_setfl(int fd, int flags) { return fcntl(fd, F_SETFL, flags); }
static inline int uplink_fcntl_getfl(int fd) { return fcntl(fd, F_GETFL); }
static inline unsigned long uplink_TIOCEXCL(void) { return TIOCEXCL; }
static inline unsigned long uplink_TIOCNXCL(void) { return TIOCNXCL; }
/// The UART driver's overrun counters (TIOCGICOUNT): characters lost in the hardware FIFO (`overrun`) and in
/// the tty flip buffer (`buf_overrun`). -1 when the device has no such counters (ptys, USB CDC ACM).
static inline int uplink_serial_overruns(int fd, long *overrun, long *buf_overrun) {
    struct serial_icounter_struct counters;
    if (ioctl(fd, TIOCGICOUNT, &counters) != 0) return -1;
    *overrun = counters.overrun;
    *buf_overrun = counters.buf_overrun;
    return 0;
}

// Child processes (the exec source). The functions are defined in CUplinkLinux.c, compiled with _GNU_SOURCE,
// because Glibc's Swift module leaves out the GNU extensions.

/// pipe2(2): both ends created atomically with `flags` (O_CLOEXEC), so a concurrent spawn cannot inherit them.
int uplink_pipe2(int fds[2], int flags);
/// posix_spawn_file_actions_addchdir_np (glibc 2.29+): the child changes directory before exec.
int uplink_posix_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path);
/// pidfd_open(2): a descriptor that becomes readable when the process exits; -1 with errno ENOSYS on old kernels.
int uplink_pidfd_open(pid_t pid);

/// Tunes glibc's malloc for a long-running agent with little memory, unless the environment already does
/// (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_):
/// - at most `arenas` arenas (M_ARENA_MAX) instead of glibc's 8 per core, each keeping its own freed memory;
/// - blocks of `mmap_threshold` bytes or more mapped on their own (M_MMAP_THRESHOLD): a fixed threshold turns
///   off glibc's sliding one, which after the first freed 128 KB batch body serves every later one from the
///   heap, where freed bodies stay resident.
void uplink_tune_malloc(int arenas, int mmap_threshold);

/// The `uplink` process's settings for uplink_tune_malloc.
/// - 4 arenas: a pipeline allocates a record on one thread and frees it on another, so threads that share an
///   arena wait on its lock. With one arena, CSV -> thing_model -> batch ran at 0.6M lines/s with 2.5 CPU s per
///   million (30,000 context switches); with 4, 1.1M lines/s and 1.4 CPU s, as with glibc's 16 on 2 cores, for
///   0.05 MiB more idle memory (bench/RESULTS.md).
/// - Batch bodies (128 KiB and up) mapped on their own, so a freed one goes back to the kernel, while 64 KiB read
///   buffers stay on the heap, where reusing them is cheaper than mapping each one.
#define UPLINK_MALLOC_ARENAS 4
#define UPLINK_MALLOC_MMAP_THRESHOLD (128 * 1024)

/// Hands back the memory start-up used and the steady state does not: unmaps the pages of every loaded
/// object's read-only segments (code, constants) from this process, and returns free heap pages to the kernel
/// (malloc_trim). Code that runs again faults its page back in from the page cache (a minor fault, no I/O
/// while the page is cached); the page cache itself is untouched, and the kernel can drop pages no process
/// maps. Writable segments (data, relocated RELRO) and objects with text relocations are left alone, so no
/// written byte is lost. Returns the bytes of address range released (a segment madvise refuses is skipped).
long uplink_release_startup_pages(void);

// The wait-status macros, which Swift cannot import.
static inline int uplink_WIFEXITED(int status) { return WIFEXITED(status); }
static inline int uplink_WEXITSTATUS(int status) { return WEXITSTATUS(status); }
static inline int uplink_WIFSIGNALED(int status) { return WIFSIGNALED(status); }
static inline int uplink_WTERMSIG(int status) { return WTERMSIG(status); }

// Build stamp: scripts/install.sh builds with -Xcc -DUPLINK_COMMIT='"abc1234"' so `uplink --version` names the
// commit; a plain `swift build` says "unknown".
static inline const char *uplink_build_commit(void) {
#ifdef UPLINK_COMMIT
    return UPLINK_COMMIT;
#else
    return "unknown";
#endif
}

#endif
