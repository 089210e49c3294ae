/*
 * scale: a transform that rescales one numeric field of each record, value * factor + offset, into the same
 * field or into `target`. A unit conversion (celsius to fahrenheit: factor 1.8, offset 32) or a raw ADC
 * reading to volts, without rebuilding the agent.
 *
 *     cc -shared -fPIC -O2 -I ../../include -o libscale.so scale.c
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uplink_plugin.h"

typedef struct scale {
    char *field;
    char *target; /* NULL: replace `field` */
    double factor;
    double offset;
} scale;

static void *scale_create(const uplink_config *config, char *error, size_t error_size) {
    const char *field = uplink_config_get(config, "field");
    const char *target = uplink_config_get(config, "target");
    const char *factor = uplink_config_get(config, "factor");
    const char *offset = uplink_config_get(config, "offset");
    if (field == NULL || field[0] == '\0') {
        /* The host already refused a config without `field` (it is required); this is for other hosts. */
        snprintf(error, error_size, "'field' must name the field to scale");
        return NULL;
    }
    scale *instance = calloc(1, sizeof *instance);
    if (instance == NULL) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    instance->field = strdup(field);
    instance->target = target ? strdup(target) : NULL;
    instance->factor = factor ? strtod(factor, NULL) : 1.0;
    instance->offset = offset ? strtod(offset, NULL) : 0.0;
    return instance;
}

static int32_t scale_process(void *opaque, const uplink_event *events, size_t count, const uplink_emitter *emitter,
                             char *error, size_t error_size) {
    scale *instance = opaque;
    const char *target = instance->target ? instance->target : instance->field;
    for (size_t i = 0; i < count; i++) {
        const uplink_event *in = &events[i];
        /* Room for every input field plus the target; the fields point into the host's memory, which stays
         * valid until this call returns, and `emit` copies what it needs. */
        uplink_field *fields = malloc((in->field_count + 1) * sizeof *fields);
        if (fields == NULL) {
            snprintf(error, error_size, "out of memory");
            return UPLINK_RETRY;
        }
        size_t n = 0;
        int found = 0;
        double value = 0;
        for (size_t f = 0; f < in->field_count; f++) {
            const uplink_field *field = &in->fields[f];
            if (strcmp(field->name, instance->field) == 0) {
                if (field->type == UPLINK_VALUE_INT) { value = (double)field->integer; found = 1; }
                if (field->type == UPLINK_VALUE_FLOAT) { value = field->number; found = 1; }
            }
            fields[n++] = *field;
        }
        if (found) {
            uplink_field scaled = { .name = target, .type = UPLINK_VALUE_FLOAT,
                                    .number = value * instance->factor + instance->offset };
            size_t f = 0;
            while (f < n && strcmp(fields[f].name, target) != 0) f++;
            fields[f] = scaled; /* replaces the target, or appends it (f == n) */
            if (f == n) n++;
        }
        uplink_event out = *in;
        out.fields = fields;
        out.field_count = n;
        int32_t status = emitter->emit(emitter->context, &out);
        free(fields);
        if (status != UPLINK_OK) {
            snprintf(error, error_size, "the host refused an output record");
            return UPLINK_ERROR;
        }
    }
    return UPLINK_OK;
}

static void scale_destroy(void *opaque) {
    scale *instance = opaque;
    free(instance->field);
    free(instance->target);
    free(instance);
}

static const uplink_option scale_options[] = {
    { "field", UPLINK_OPTION_STRING, 1, NULL, "the numeric field to scale (records without it pass unchanged)" },
    { "factor", UPLINK_OPTION_FLOAT, 0, "1", "multiplied first" },
    { "offset", UPLINK_OPTION_FLOAT, 0, "0", "added after" },
    { "target", UPLINK_OPTION_STRING, 0, NULL, "write the result here instead of replacing `field`" },
};

static const uplink_plugin scale_plugin = {
    .abi_version = UPLINK_PLUGIN_ABI_VERSION,
    .role = UPLINK_ROLE_TRANSFORM,
    .type = "scale",
    .summary = "Rescales a numeric field: value * factor + offset (a C shared object).",
    .accepts = UPLINK_KIND_MASK(UPLINK_KIND_RECORD),
    .output = UPLINK_KIND_RECORD,
    .options = scale_options,
    .option_count = sizeof scale_options / sizeof scale_options[0],
    .create = scale_create,
    .process = scale_process,
    .destroy = scale_destroy,
};

const uplink_plugin *uplink_plugin_register(uint32_t host_abi_version, char *error, size_t error_size) {
    (void)host_abi_version; /* the host checks our abi_version against its own */
    (void)error;
    (void)error_size;
    return &scale_plugin;
}
