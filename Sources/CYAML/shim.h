#ifndef UPLINK_CYAML_SHIM_H
#define UPLINK_CYAML_SHIM_H
#include <yaml.h>
#endif
