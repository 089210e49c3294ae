#ifndef UPLINK_CCURL_SHIM_H
#define UPLINK_CCURL_SHIM_H
// libcurl for the IoTCore module. curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic, which
// Swift cannot call, so each argument kind gets one typed static inline shim (the pattern of
// swift-corelibs-foundation's CFURLSessionInterface). Macros that are not plain integer literals get a
// function or a constant here too.
#include <curl/curl.h>

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

#endif
