#ifndef UPLINK_CCURL_SHIM_H
#define UPLINK_CCURL_SHIM_H
// libcurl for the IoTCore module. curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic, which
// Swift cannot call, so each argument kind gets one typed static inline shim (the pattern of
// swift-corelibs-foundation's CFURLSessionInterface). Macros that are not plain integer literals get a
// function or a constant here too.
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

// The flags for curl_global_init: CURL_GLOBAL_DEFAULT is a macro expression that Swift does not import.
static inline CURLcode uplink_curl_global_init_default(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT);
}

// --- curl_easy_setopt, one shim per argument kind ---

static inline CURLcode uplink_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode uplink_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode uplink_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode uplink_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode uplink_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

// CURLOPT_WRITEFUNCTION (and CURLOPT_HEADERFUNCTION, which has the same signature).
static inline CURLcode uplink_curl_easy_setopt_write_function(
    CURL *handle, CURLoption option, curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

// CURLOPT_READFUNCTION: the request body is handed to libcurl piece by piece from the caller's own bytes.
static inline CURLcode uplink_curl_easy_setopt_read_function(CURL *handle, curl_read_callback value) {
    return curl_easy_setopt(handle, CURLOPT_READFUNCTION, value);
}

// CURLOPT_SEEKFUNCTION: lets libcurl rewind the body to send it again (a reused connection that was closed).
static inline CURLcode uplink_curl_easy_setopt_seek_function(CURL *handle, curl_seek_callback value) {
    return curl_easy_setopt(handle, CURLOPT_SEEKFUNCTION, value);
}

// --- curl_easy_getinfo, one shim per result kind ---

static inline CURLcode uplink_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode uplink_curl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

// CURLINFO_PRIVATE answers the pointer set with CURLOPT_PRIVATE.
static inline CURLcode uplink_curl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, (char **)value);
}

// --- curl_multi_setopt ---

static inline CURLMcode uplink_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

// --- CURLMsg: its `data` member is a union, read it in C so Swift sees plain values ---

static inline CURLcode uplink_curl_msg_result(const CURLMsg *message) {
    return message->data.result;
}

// --- the socket under libcurl ---

// A server that writes an answer's headers and body in two sends without TCP_NODELAY holds the body (Nagle)
// until the headers are ACKed, and Linux delays that ACK by up to 40 ms: every request would wait for it.
// Linux leaves quick-ACK mode whenever it sends soon after receiving (a request right after an answer on a
// kept-alive connection), so setting TCP_QUICKACK once per socket is not enough; it is set again on the socket
// an answer's headers arrive on, which sends the pending ACK at once. libcurl 7.88 tells a transfer its local
// port, not its socket, so the sockets libcurl opens are tracked here (opened: CURLOPT_SOCKOPTFUNCTION,
// closed: CURLOPT_CLOSESOCKETFUNCTION) with their local ports, looked up lazily. Driver thread only.
#define UPLINK_SOCKET_TABLE_CAPACITY 320

typedef struct {
    curl_socket_t fd[UPLINK_SOCKET_TABLE_CAPACITY];
    int port[UPLINK_SOCKET_TABLE_CAPACITY]; // 0 until looked up
    int count;
} uplink_socket_table;

static int uplink_socket_table_opened(void *clientp, curl_socket_t fd, curlsocktype purpose) {
    uplink_socket_table *table = clientp;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    // Beyond the capacity a socket simply is not tracked (it may wait for delayed ACKs).
    if (purpose == CURLSOCKTYPE_IPCXN && table->count < UPLINK_SOCKET_TABLE_CAPACITY) {
        table->fd[table->count] = fd;
        table->port[table->count] = 0;
        table->count += 1;
    }
    return CURL_SOCKOPT_OK;
}

static int uplink_socket_table_closed(void *clientp, curl_socket_t fd) {
    uplink_socket_table *table = clientp;
    for (int i = 0; i < table->count; i++) {
        if (table->fd[i] == fd) {
            table->count -= 1;
            table->fd[i] = table->fd[table->count];
            table->port[i] = table->port[table->count];
            break;
        }
    }
    return close(fd);
}

static inline CURLcode uplink_curl_easy_setopt_socket_table(CURL *handle, uplink_socket_table *table) {
    CURLcode code = curl_easy_setopt(handle, CURLOPT_SOCKOPTFUNCTION, uplink_socket_table_opened);
    if (code == CURLE_OK) code = curl_easy_setopt(handle, CURLOPT_SOCKOPTDATA, table);
    if (code == CURLE_OK) code = curl_easy_setopt(handle, CURLOPT_CLOSESOCKETFUNCTION, uplink_socket_table_closed);
    if (code == CURLE_OK) code = curl_easy_setopt(handle, CURLOPT_CLOSESOCKETDATA, table);
    return code;
}

// Asks for an immediate ACK on the tracked socket bound to local port `port`; nothing when none is.
static inline void uplink_socket_table_quickack(uplink_socket_table *table, long port) {
    if (port <= 0) return;
    for (int i = 0; i < table->count; i++) {
        if (table->port[i] == 0) {
            struct sockaddr_storage address;
            socklen_t length = sizeof address;
            if (getsockname(table->fd[i], (struct sockaddr *)&address, &length) == 0) {
                if (address.ss_family == AF_INET) table->port[i] = ntohs(((struct sockaddr_in *)&address)->sin_port);
                else if (address.ss_family == AF_INET6) table->port[i] = ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
            }
        }
        if (table->port[i] == port) {
            int one = 1;
            (void)setsockopt(table->fd[i], IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
            return;
        }
    }
}

// --- the driver's event loop: curl_multi_socket_action on epoll ---

// curl_multi_perform visits every transfer on each call, and in libcurl 7.88 each visit polls that transfer's
// socket: with 32 requests in flight behind a long round trip, every answer that trickles in costs 32 polls
// and clock reads. With curl_multi_socket_action libcurl tells which sockets it waits on (socket callback,
// kept in an epoll set here) and when it next needs the time (timer callback), and each ready socket wakes
// only its own transfer. An eventfd in the same set replaces curl_multi_wakeup. Driver thread only, except
// uplink_multi_events_wakeup.
typedef struct {
    int epoll;
    int wake;
    // CLOCK_MONOTONIC nanoseconds when libcurl wants CURL_SOCKET_TIMEOUT; -1 for none.
    int64_t deadline;
} uplink_multi_events;

static inline int64_t uplink_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static int uplink_multi_socket_callback(CURL *easy, curl_socket_t fd, int what, void *clientp, void *socketp) {
    (void)easy;
    (void)socketp;
    uplink_multi_events *events = clientp;
    if (what == CURL_POLL_REMOVE) {
        // The socket may already be closed (and so out of the set): nothing to undo then.
        (void)epoll_ctl(events->epoll, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    struct epoll_event event = {0};
    event.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    event.data.fd = fd;
    if (epoll_ctl(events->epoll, EPOLL_CTL_MOD, fd, &event) != 0 && errno == ENOENT) {
        // A socket libcurl closed leaves the set by itself, and its number may come back as a new socket.
        if (epoll_ctl(events->epoll, EPOLL_CTL_ADD, fd, &event) != 0) return -1;
    }
    return 0;
}

static int uplink_multi_timer_callback(CURLM *multi, long timeout_ms, void *clientp) {
    (void)multi;
    uplink_multi_events *events = clientp;
    events->deadline = timeout_ms < 0 ? -1 : uplink_monotonic_ns() + (int64_t)timeout_ms * 1000000;
    return 0;
}

// Creates the epoll set and the wakeup eventfd and installs the callbacks; 0, or -1 with errno.
static inline int uplink_multi_events_open(uplink_multi_events *events, CURLM *multi) {
    events->deadline = -1;
    events->epoll = epoll_create1(EPOLL_CLOEXEC);
    if (events->epoll < 0) return -1;
    events->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.fd = events->wake;
    if (events->wake < 0 || epoll_ctl(events->epoll, EPOLL_CTL_ADD, events->wake, &event) != 0) {
        int saved = errno;
        if (events->wake >= 0) close(events->wake);
        close(events->epoll);
        errno = saved;
        return -1;
    }
    if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, uplink_multi_socket_callback) != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, events) != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, uplink_multi_timer_callback) != CURLM_OK
        || curl_multi_setopt(multi, CURLMOPT_TIMERDATA, events) != CURLM_OK) {
        close(events->wake);
        close(events->epoll);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

// Closes what uplink_multi_events_open opened; after curl_multi_cleanup (which still removes sockets).
static inline void uplink_multi_events_close(uplink_multi_events *events) {
    close(events->wake);
    close(events->epoll);
}

// Ends a wait in uplink_multi_events_run from any thread.
static inline void uplink_multi_events_wakeup(uplink_multi_events *events) {
    uint64_t one = 1;
    (void)write(events->wake, &one, sizeof one);
}

// Waits until a socket is ready, libcurl's timer is due, a wakeup comes or `max_wait_ms` passed, and lets
// libcurl act on what happened (only the transfers concerned). Returns how many sockets were ready.
static inline int uplink_multi_events_run(uplink_multi_events *events, CURLM *multi, int max_wait_ms) {
    int wait = max_wait_ms;
    if (events->deadline >= 0) {
        int64_t left = (events->deadline - uplink_monotonic_ns() + 999999) / 1000000;
        if (left < wait) wait = left < 0 ? 0 : (int)left;
    }
    struct epoll_event ready[64];
    int count = epoll_wait(events->epoll, ready, 64, wait);
    int running = 0;
    int sockets = 0;
    for (int i = 0; i < count; i++) {
        if (ready[i].data.fd == events->wake) {
            uint64_t value;
            (void)read(events->wake, &value, sizeof value);
            continue;
        }
        int bits = (ready[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (ready[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0)
            | (ready[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        (void)curl_multi_socket_action(multi, ready[i].data.fd, bits, &running);
        sockets += 1;
    }
    if (events->deadline >= 0 && uplink_monotonic_ns() >= events->deadline) {
        // Cleared first: the action may set the next deadline through the timer callback.
        events->deadline = -1;
        (void)curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    return sockets;
}

// --- the clock ---

// Whether the kernel says the system clock is disciplined (NTP, PTP, chrony): adjtimex in read-only mode
// (modes 0, no privilege needed) reports neither TIME_ERROR nor STA_UNSYNC.
static inline int uplink_clock_is_synchronised(void) {
    struct timex tx = {0};
    int state = adjtimex(&tx);
    return state >= 0 && state != TIME_ERROR && !(tx.status & STA_UNSYNC);
}

#endif
