/* SPDX-License-Identifier: MIT */
/* bench/memory: the smallest C program, to measure what linking a library
 * costs in resident memory. Built three ways by bench/memory/run: plain,
 * linked with -lcurl (-DWITH_CURL), and with curl_global_init called
 * (argument "default" or "nothing"). It prints its own VmRSS, RssAnon and
 * RssFile in kB from /proc/self/status on one line, then exits. */
#include <stdio.h>
#include <string.h>

#ifdef WITH_CURL
#include <curl/curl.h>
#endif

static long
status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(field);
    long v = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            if (sscanf(line + n + 1, "%ld", &v) != 1)
                v = -1;
            break;
        }
    }
    fclose(f);
    return v;
}

int
main(int argc, char **argv)
{
#ifdef WITH_CURL
    /* Keep the dependency even under -Wl,--as-needed. */
    volatile const char *ver = curl_version();
    (void)ver;
    if (argc > 1 && strcmp(argv[1], "default") == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    if (argc > 1 && strcmp(argv[1], "nothing") == 0 && curl_global_init(CURL_GLOBAL_NOTHING) != 0)
        return 1;
#else
    (void)argc;
    (void)argv;
#endif
    printf("%ld %ld %ld\n", status_kib("VmRSS"), status_kib("RssAnon"), status_kib("RssFile"));
    return 0;
}
