#ifndef UPLINK_CPCRE2_SHIM_H
#define UPLINK_CPCRE2_SHIM_H
// 8-bit code units: patterns and lines are UTF-8 bytes. The `_8` function names are the real symbols (the
// unsuffixed names are macros Swift cannot see).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif
