// Tells ThreadSanitizer about the contended paths of Swift's `Synchronization.Mutex` on Linux (x86_64), for
// scripts/sanitizers.sh. Without it every contended Mutex is reported as a data race (a false positive).
//
// Why: `Mutex.withLock` inlines its fast path (a compare-exchange with acquire/release ordering, instrumented
// in our code), but under contention it calls `_MutexHandle._lockSlow`/`_unlockSlow` in libswiftSynchronization.so,
// which is not instrumented and hands the lock over with FUTEX_LOCK_PI/FUTEX_UNLOCK_PI system calls. ThreadSanitizer
// sees no synchronisation there, so the next holder's accesses "race" with the previous holder's. A five-line program
// (two threads appending to a Mutex<[Int]>) reproduces it with Swift 6.3.1.
//
// How: preloaded (LD_PRELOAD) into the test process, this library interposes the three slow-path functions, calls
// the real ones and reports the acquire (after the lock is taken) or the release (before it is given up) on the
// mutex's own address: exactly the edge the fast path's atomics report, so nothing else is hidden. The functions are
// Swift methods: `self` (the mutex's address) arrives in r13 (swiftself), hence the assembly trampolines. Outside a
// ThreadSanitizer process (children the tests spawn) `__tsan_acquire` is absent and the trampolines only forward.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

#if !defined(__x86_64__)
#error "tsan-mutex.c has x86_64 trampolines only (aarch64 would pass self in x20)"
#endif

#define LOCK_SLOW "$s15Synchronization12_MutexHandleV9_lockSlowyys6UInt32VF"
#define TRY_LOCK_SLOW "$s15Synchronization12_MutexHandleV12_tryLockSlowSbyF"
#define UNLOCK_SLOW "$s15Synchronization12_MutexHandleV11_unlockSlowyyF"

extern void __tsan_acquire(void *address) __attribute__((weak));
extern void __tsan_release(void *address) __attribute__((weak));

// Hidden: the trampolines address them relative to rip.
#define LOCAL __attribute__((visibility("hidden")))
LOCAL void *uplink_real_lock_slow, *uplink_real_try_lock_slow, *uplink_real_unlock_slow;
LOCAL void (*uplink_tsan_acquire)(void *), (*uplink_tsan_release)(void *);

__attribute__((constructor)) static void uplink_resolve(void) {
    uplink_real_lock_slow = dlsym(RTLD_NEXT, LOCK_SLOW);
    uplink_real_try_lock_slow = dlsym(RTLD_NEXT, TRY_LOCK_SLOW);
    uplink_real_unlock_slow = dlsym(RTLD_NEXT, UNLOCK_SLOW);
    uplink_tsan_acquire = __tsan_acquire;
    uplink_tsan_release = __tsan_release;
}

// Each trampoline: at entry rsp is 8 mod 16; pushing r13 (self, callee-saved) aligns it for the calls.
__asm__(
    ".text\n"
    // _lockSlow(selfId: UInt32): edi = selfId, r13 = self.
    ".globl \"" LOCK_SLOW "\"\n"
    ".type \"" LOCK_SLOW "\",@function\n"
    "\"" LOCK_SLOW "\":\n"
    "    push %r13\n"
    "    call *uplink_real_lock_slow(%rip)\n"
    "    mov uplink_tsan_acquire(%rip), %rax\n"
    "    test %rax, %rax\n"
    "    jz 1f\n"
    "    mov (%rsp), %rdi\n"
    "    call *%rax\n"
    "1:  pop %r13\n"
    "    ret\n"
    // _tryLockSlow() -> Bool: r13 = self; al = taken.
    ".globl \"" TRY_LOCK_SLOW "\"\n"
    ".type \"" TRY_LOCK_SLOW "\",@function\n"
    "\"" TRY_LOCK_SLOW "\":\n"
    "    push %r13\n"
    "    call *uplink_real_try_lock_slow(%rip)\n"
    "    test %al, %al\n"
    "    jz 2f\n"
    "    mov uplink_tsan_acquire(%rip), %rcx\n"
    "    test %rcx, %rcx\n"
    "    jz 2f\n"
    "    mov (%rsp), %rdi\n"
    "    call *%rcx\n"
    "    mov $1, %eax\n"
    "2:  pop %r13\n"
    "    ret\n"
    // _unlockSlow(): r13 = self.
    ".globl \"" UNLOCK_SLOW "\"\n"
    ".type \"" UNLOCK_SLOW "\",@function\n"
    "\"" UNLOCK_SLOW "\":\n"
    "    push %r13\n"
    "    mov uplink_tsan_release(%rip), %rax\n"
    "    test %rax, %rax\n"
    "    jz 3f\n"
    "    mov %r13, %rdi\n"
    "    call *%rax\n"
    "3:  call *uplink_real_unlock_slow(%rip)\n"
    "    pop %r13\n"
    "    ret\n");
