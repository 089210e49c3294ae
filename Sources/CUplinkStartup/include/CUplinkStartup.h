#ifndef CUPLINK_STARTUP_H
#define CUPLINK_STARTUP_H
// Nothing to call: linking this target into an executable is what takes effect (a .preinit_array entry and a
// constructor, see CUplinkStartup.c).
#endif
