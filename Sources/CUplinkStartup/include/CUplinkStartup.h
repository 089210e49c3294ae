#ifndef CUPLINK_STARTUP_H
#define CUPLINK_STARTUP_H
// Nothing to call: linking this target into an executable is what takes effect (the exported
// _gnutls_global_init_skip, see CUplinkStartup.c).
#endif
