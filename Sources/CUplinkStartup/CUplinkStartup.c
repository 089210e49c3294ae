// Process start-up for the `uplink` executable: what has to be in place before the shared libraries' constructors
// and the Swift runtime run. Only the executable target links this file; the libraries never see it.
#include "CUplinkLinux.h"

// .preinit_array functions run before any shared library's constructor (glibc's _dl_init), on the main thread.
static void uplink_preinit(int argc, char **argv, char **envp) {
    (void)argc;
    (void)argv;
    (void)envp;
    // Malloc settings before the first allocation: a thread started before main would otherwise get an arena
    // of its own, 0.15-0.2 MiB that stays for the life of the process.
    uplink_tune_malloc(UPLINK_MALLOC_ARENAS, UPLINK_MALLOC_MMAP_THRESHOLD);
}

__attribute__((section(".preinit_array"), used)) static void (*preinit_entry)(int, char **, char **) = uplink_preinit;

// GnuTLS's documented way for an application to skip its implicit initialisation (GNUTLS_SKIP_GLOBAL_INIT in
// <gnutls/gnutls.h>): its library constructor calls this weak symbol through the PLT, and the executable's
// definition wins (Package.swift exports it). Debian's libcurl links librtmp, which links GnuTLS, whose
// constructor otherwise builds ASN.1 trees and loads p11-kit: 0.15 MiB that stays, for a library Uplink never
// calls (libcurl is limited to http and https, served by OpenSSL).
__attribute__((visibility("default"), used)) int _gnutls_global_init_skip(void) { return 1; }
