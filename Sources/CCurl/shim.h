#ifndef UPLOADER_CCURL_SHIM_H
#define UPLOADER_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot
   call. Each wrapper fixes one argument type so the compiler checks it. */

static inline CURLcode uploader_curl_setopt_long(CURL *h, CURLoption o, long v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode uploader_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode uploader_curl_setopt_string(CURL *h, CURLoption o, const char *v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode uploader_curl_setopt_pointer(CURL *h, CURLoption o, void *v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode uploader_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) {
    return curl_easy_setopt(h, o, v);
}

typedef size_t (*uploader_curl_data_callback)(char *buffer, size_t size, size_t count, void *userdata);
typedef int (*uploader_curl_xferinfo_callback)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                               curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode uploader_curl_setopt_data_callback(CURL *h, CURLoption o, uploader_curl_data_callback f) {
    return curl_easy_setopt(h, o, f);
}
static inline CURLcode uploader_curl_setopt_xferinfo_callback(CURL *h, uploader_curl_xferinfo_callback f) {
    return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f);
}

static inline CURLcode uploader_curl_getinfo_long(CURL *h, CURLINFO i, long *v) {
    return curl_easy_getinfo(h, i, v);
}
static inline CURLcode uploader_curl_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) {
    return curl_easy_getinfo(h, i, v);
}

/* CURL_READFUNC_ABORT is a macro Swift does not import. */
static inline size_t uploader_curl_readfunc_abort(void) { return CURL_READFUNC_ABORT; }
#endif
