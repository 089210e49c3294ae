/*
 * uplink_plugin.h: the C ABI of Uplink's loadable plugins, version 1.
 *
 * A plugin is a shared object (`cc -shared -fPIC -I include -o libx.so x.c`) listed at the top of a
 * pipeline config:
 *
 *     plugins: [./libscale.so]          # relative to the config file
 *     transforms:
 *       scaled: { type: scale, inputs: [...], field: temp, factor: 1.8 }
 *
 * It exports one symbol, `uplink_plugin_register`, returning a static descriptor: the ABI version it was
 * built for, its type name and role, the event kinds it accepts and produces, its options, and callbacks.
 * Any language with a C ABI works: C, C++ (extern "C"), Swift (@_cdecl), Rust (#[no_mangle] extern "C"),
 * Zig (export fn).
 *
 * Rules the host keeps, so a plugin can be simple:
 * - Options are checked against `options` before anything runs (unknown keys, types, required ones), and
 *   `create` gets every declared option that is set or has a default, as text.
 * - All callbacks of one instance are called from one thread, one at a time: an instance needs no locking.
 *   That thread is the instance's own, so a callback may block (a sink writing to a socket). Two components
 *   using the same plugin are two instances, possibly called at the same time from two threads.
 * - Everything the host passes (events, fields, strings, config) is valid only during the call. Everything
 *   a plugin emits is copied by `emit` before it returns, so the plugin keeps ownership of its memory.
 * - An `error` buffer of `error_size` bytes comes with each call that can fail: write a NUL-terminated
 *   message (truncated to fit), and the host logs or reports it with the component's id.
 *
 * Versioning: UPLINK_PLUGIN_ABI_VERSION changes whenever a struct below changes shape or meaning. The host
 * reads `abi_version` (the first field of `uplink_plugin`, in every version) before anything else, and
 * refuses a plugin built for another version with an error naming the file.
 */
#ifndef UPLINK_PLUGIN_H
#define UPLINK_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UPLINK_PLUGIN_ABI_VERSION 1u

/* Roles (`uplink_plugin.role`). */
#define UPLINK_ROLE_SOURCE 1u
#define UPLINK_ROLE_TRANSFORM 2u
#define UPLINK_ROLE_SINK 3u

/* Event kinds (`uplink_event.kind`, `uplink_plugin.output`), and the mask of accepted kinds. */
#define UPLINK_KIND_RAW 1u     /* framed bytes: a line, a serial frame; not necessarily UTF-8 */
#define UPLINK_KIND_RECORD 2u  /* structured fields */
#define UPLINK_KIND_MESSAGE 3u /* a payload for a topic */
#define UPLINK_KIND_MASK(kind) (1u << (kind))

/* What callbacks return. */
#define UPLINK_OK 0     /* done */
#define UPLINK_RETRY 1  /* transient failure: the host calls again with the same events after a back-off */
#define UPLINK_ERROR 2  /* these events are given up: a transform drops them, a sink fails them (counted) */
#define UPLINK_FATAL 3  /* the instance cannot go on: the component fails and the pipeline stops */
#define UPLINK_DONE 4   /* a source has nothing more to produce: the pipeline drains as at end of stdin */

/* Value types of a record's fields (`uplink_field.type`). */
#define UPLINK_VALUE_NULL 0u
#define UPLINK_VALUE_BOOL 1u   /* `integer` is 0 or 1 */
#define UPLINK_VALUE_INT 2u    /* `integer` */
#define UPLINK_VALUE_FLOAT 3u  /* `number` */
#define UPLINK_VALUE_STRING 4u /* `string` / `string_length`: UTF-8 */
#define UPLINK_VALUE_JSON 5u   /* `string` / `string_length`: a nested array or object as compact JSON */

/* Option types (`uplink_option.type`); how `create` receives each value, as text. */
#define UPLINK_OPTION_STRING 1u   /* as written */
#define UPLINK_OPTION_INT 2u      /* decimal integer */
#define UPLINK_OPTION_FLOAT 3u    /* decimal number */
#define UPLINK_OPTION_BOOL 4u     /* "true" or "false" */
#define UPLINK_OPTION_DURATION 5u /* written 500ms / 2s / 1m / 1h; received as whole milliseconds */
#define UPLINK_OPTION_SIZE 6u     /* written 131072 / 128KiB / 1MB; received as bytes */
#define UPLINK_OPTION_JSON 7u     /* any YAML value; received as compact JSON */

/* One field of a record. Strings are UTF-8 and also NUL-terminated (the length excludes the NUL). */
typedef struct uplink_field {
    const char *name;
    uint32_t type;
    int64_t integer;
    double number;
    const char *string;
    size_t string_length;
} uplink_field;

/* One event, in either direction. Only the members of its kind are read. */
typedef struct uplink_event {
    uint32_t kind;
    /* Milliseconds since the Unix epoch when the data was read. On emit, 0 means: the input's (transform) or
     * now (source). */
    int64_t timestamp_ms;
    /* RAW: the bytes. MESSAGE: the body. */
    const uint8_t *data;
    size_t length;
    /* MESSAGE: the topic, NUL-terminated; NULL for the sink's default topic. */
    const char *topic;
    /* RECORD: the fields, in order. */
    const uplink_field *fields;
    size_t field_count;
} uplink_event;

/* Where a plugin sends its events. `emit` copies the event and returns UPLINK_OK, or UPLINK_ERROR when the
 * event is not valid (another kind than the plugin's output, invalid UTF-8 or JSON). */
typedef struct uplink_emitter {
    void *context;
    int32_t (*emit)(void *context, const uplink_event *event);
} uplink_emitter;

/* One option of the plugin, for the config check, `uplink plugins` and `create`. */
typedef struct uplink_option {
    const char *name;
    uint32_t type;
    uint32_t required; /* non-zero: the component must set it */
    const char *default_value; /* as a user would write it; NULL for none */
    const char *description;
} uplink_option;

/* The options `create` receives: every declared option that is set or has a default. */
typedef struct uplink_config_entry {
    const char *name;
    const char *value;
} uplink_config_entry;

typedef struct uplink_config {
    const char *component; /* the component's id, for the plugin's own messages */
    const uplink_config_entry *entries;
    size_t count;
} uplink_config;

/* The value of option `name`, or NULL when it is neither set nor defaulted. */
static inline const char *uplink_config_get(const uplink_config *config, const char *name) {
    for (size_t i = 0; i < config->count; i++) {
        if (strcmp(config->entries[i].name, name) == 0) return config->entries[i].value;
    }
    return NULL;
}

/* The descriptor `uplink_plugin_register` returns. Static: the host keeps the pointer for the life of the
 * process (shared objects are never unloaded). */
typedef struct uplink_plugin {
    /* UPLINK_PLUGIN_ABI_VERSION, always first. */
    uint32_t abi_version;
    /* UPLINK_ROLE_*. */
    uint32_t role;
    /* The `type:` users write: letters, digits and '_'. */
    const char *type;
    /* One line for `uplink plugins`. */
    const char *summary;
    /* Transforms and sinks: the kinds accepted, as UPLINK_KIND_MASK(kind) | ...; 0 for a source. */
    uint32_t accepts;
    /* Sources and transforms: the kind produced (UPLINK_KIND_*); 0 for a sink. */
    uint32_t output;
    const uplink_option *options;
    size_t option_count;

    /* Makes an instance for one component when the pipeline starts (not when it is only validated). Returns
     * NULL with a message in `error` when it cannot (the component then fails). */
    void *(*create)(const uplink_config *config, char *error, size_t error_size);

    /* Transforms and sinks: handles a batch of `count` events. A transform emits its outputs through
     * `emitter` (zero or more per input); a sink delivers and returns UPLINK_OK once they are delivered, which
     * is when the host acknowledges them to the source. */
    int32_t (*process)(void *instance, const uplink_event *events, size_t count, const uplink_emitter *emitter,
                       char *error, size_t error_size);

    /* Sources: emits what is available and returns UPLINK_OK, or UPLINK_DONE at the end. Called again at once
     * after it emitted something, after 50 ms after it emitted nothing; it may block, but should return within
     * about 100 ms so a shutdown is prompt. */
    int32_t (*poll)(void *instance, const uplink_emitter *emitter, char *error, size_t error_size);

    /* Optional (NULL): at the end of the input, a transform emits what it still holds and a sink writes what it
     * buffered. */
    int32_t (*flush)(void *instance, const uplink_emitter *emitter, char *error, size_t error_size);

    /* Frees an instance. Called once, after its last callback. */
    void (*destroy)(void *instance);
} uplink_plugin;

/* The one symbol a plugin exports. `host_abi_version` is the host's UPLINK_PLUGIN_ABI_VERSION. Returns the
 * descriptor, or NULL with a message in `error` when the plugin cannot initialise (a missing device, a
 * library it needs): the host reports that as a configuration error naming the file. */
const uplink_plugin *uplink_plugin_register(uint32_t host_abi_version, char *error, size_t error_size);

#define UPLINK_PLUGIN_ENTRY_POINT "uplink_plugin_register"

#ifdef __cplusplus
}
#endif

#endif /* UPLINK_PLUGIN_H */
