/* SPDX-License-Identifier: MIT */
/* Shared libraries loaded at run time, and only by the programs that use
 * them: libpq when a PostgreSQL URL is configured (store), librabbitmq when
 * an amqp:// URL is (events), libcurl at notifications' first e-mail. They are dlopen()ed by soname and their
 * functions resolved into a table of pointers, so a program on SQLite and
 * the bus maps neither them nor what they pull in (OpenSSL, Kerberos,
 * LDAP): a few MiB of resident memory each (bench/memory). */
#ifndef AG_DYNLIB_H
#define AG_DYNLIB_H

#include "agora/base.h"

/* One symbol to resolve: its name and the pointer it fills. */
struct ag_dynlib_sym {
    const char *name; /* exported symbol ("PQexec", "amqp_empty_table") */
    void **slot;      /* receives its address: (void **)&table.fn (POSIX dlsym idiom) */
};

/* One library, in static storage; 'handle' starts NULL. */
struct ag_dynlib {
    const char *soname;               /* dlopen()ed by this name ("libpq.so.5") */
    const char *package;              /* the Debian package shipping it, named in errors */
    const struct ag_dynlib_sym *syms; /* what to resolve */
    size_t nsyms;                     /* entries of 'syms' */
    void *handle;                     /* set once every symbol resolved; never closed */
};

/* Open 'lib' (RTLD_NOW | RTLD_LOCAL) and fill every slot of its table,
 * once: later calls return 0 at once. Any thread; serialised by a process
 * lock, so a thread that saw 0 may call through the table.
 * Returns 0, or AG_ECONFIG with a message in 'errbuf' (when not NULL)
 * naming the soname, the package to install and dlerror()'s reason:
 * "cannot load 'libpq.so.5' (install the package libpq5): ...". A failed
 * load leaves 'handle' NULL; the slots must then not be called. */
int ag_dynlib_load(struct ag_dynlib *lib, char *errbuf, size_t errbuf_len);

/* Whether the library 'soname' is mapped into this process (RTLD_NOLOAD):
 * by a DT_NEEDED entry of the executable or by some dlopen(). */
bool ag_dynlib_is_mapped(const char *soname);

#endif /* AG_DYNLIB_H */
