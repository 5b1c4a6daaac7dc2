/* SPDX-License-Identifier: MIT */
/* Run-time loading of the optional backends' libraries (agora/dynlib.h):
 * dlopen by soname, dlsym into the caller's table of pointers, once per
 * process under one lock. The store (libpq) and the events runtime
 * (librabbitmq) call it when their URL names that backend. */
#include "agora/base.h"
#include "agora/dynlib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "agora/err.h"

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static void
set_err(char *errbuf, size_t errbuf_len, const char *fmt, const char *a, const char *b,
        const char *c)
{
    if (errbuf != NULL && errbuf_len > 0)
        snprintf(errbuf, errbuf_len, fmt, a, b, c);
}

int
ag_dynlib_load(struct ag_dynlib *lib, char *errbuf, size_t errbuf_len)
{
    if (lib == NULL || lib->soname == NULL || (lib->nsyms > 0 && lib->syms == NULL))
        return AG_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&load_lock);
    if (lib->handle != NULL)
        goto out;
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        set_err(errbuf, errbuf_len, "cannot load '%s' (install the package %s): %s", lib->soname,
                lib->package != NULL ? lib->package : "that ships it", why ? why : "unknown");
        rc = AG_ECONFIG;
        goto out;
    }
    for (size_t i = 0; i < lib->nsyms; i++) {
        dlerror();
        void *p = dlsym(h, lib->syms[i].name);
        if (p == NULL) {
            /* A library older than the headers we built against. */
            set_err(errbuf, errbuf_len, "'%s' has no symbol '%s' (the package %s is too old)",
                    lib->soname, lib->syms[i].name,
                    lib->package != NULL ? lib->package : "that ships it");
            for (size_t j = 0; j < i; j++)
                *lib->syms[j].slot = NULL;
            dlclose(h);
            rc = AG_ECONFIG;
            goto out;
        }
        *lib->syms[i].slot = p;
    }
    lib->handle = h;
out:
    pthread_mutex_unlock(&load_lock);
    return rc;
}

bool
ag_dynlib_is_mapped(const char *soname)
{
    if (soname == NULL)
        return false;
    void *h = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
    if (h == NULL)
        return false;
    dlclose(h); /* drops the reference RTLD_NOLOAD took */
    return true;
}
