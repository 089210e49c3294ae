// Process start-up for the `uplink` executable: what has to be in place before the shared libraries' constructors
// run. Only the executable target links this file; the libraries never see it.

// GnuTLS's documented way for an application to skip its implicit initialisation (GNUTLS_SKIP_GLOBAL_INIT in
// <gnutls/gnutls.h>): its library constructor calls this weak symbol through the PLT, and the executable's
// definition wins (Package.swift exports it). Debian's libcurl links librtmp, which links GnuTLS, whose
// constructor otherwise builds ASN.1 trees and loads p11-kit: 0.15 MiB that stays, for a library Uplink never
// calls (libcurl is limited to http and https, served by OpenSSL).
__attribute__((visibility("default"), used)) int _gnutls_global_init_skip(void) { return 1; }
