/* SPDX-License-Identifier: MIT */
/* Static files of the web UI (AGORA_GATEWAY_WEB_ROOT). A path is decoded
 * and checked before it touches the file system (no "." or ".." segments,
 * no encoded '/', no NUL, no hidden files), resolved with realpath, and
 * served only when the result stays under the root's real path, so neither
 * traversal nor a symlink leads outside. Files are read once, with a bound,
 * into an LRU cache keyed by the request path and revalidated with one
 * stat() per request (size, mtime, inode); ETag / If-None-Match give 304s. */
#include "agora/base.h"
#include "gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"

#define MAX_CACHED_FILES 4096

struct file_entry {
    struct gw_entry e;
    char *key;  /* decoded request path */
    char *real; /* resolved file name under the root */
    char *data; /* whole file */
    size_t len;
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    char etag[64];
    const char *ctype;
    bool html; /* revalidated by browsers on every use */
};

struct gw_static {
    char root[PATH_MAX]; /* real path of the root, "" while it does not exist */
    char *root_arg;      /* as configured */
    size_t rootlen;
    struct gw_table cache;
    uint64_t cache_bytes;   /* bytes of file data held */
    uint64_t max_bytes;     /* AGORA_GATEWAY_WEB_CACHE_BYTES */
    uint64_t max_file;      /* AGORA_GATEWAY_WEB_MAX_FILE */
    char cache_control[64]; /* for files other than HTML */
};

static const struct {
    const char *ext;
    const char *type;
} MIME[] = {
    { "html", "text/html; charset=utf-8" },
    { "htm", "text/html; charset=utf-8" },
    { "css", "text/css; charset=utf-8" },
    { "js", "text/javascript; charset=utf-8" },
    { "mjs", "text/javascript; charset=utf-8" },
    { "json", "application/json" },
    { "map", "application/json" },
    { "webmanifest", "application/manifest+json" },
    { "svg", "image/svg+xml" },
    { "png", "image/png" },
    { "jpg", "image/jpeg" },
    { "jpeg", "image/jpeg" },
    { "gif", "image/gif" },
    { "webp", "image/webp" },
    { "avif", "image/avif" },
    { "ico", "image/x-icon" },
    { "woff", "font/woff" },
    { "woff2", "font/woff2" },
    { "txt", "text/plain; charset=utf-8" },
    { "xml", "application/xml" },
    { "wasm", "application/wasm" },
};

const char *
gw_static_mime(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (dot != NULL) {
        for (size_t i = 0; i < AG_ARRAY_SIZE(MIME); i++) {
            if (strcasecmp(dot + 1, MIME[i].ext) == 0)
                return MIME[i].type;
        }
    }
    return "application/octet-stream";
}

static void
file_free(struct file_entry *f)
{
    ag_free(f->key);
    ag_free(f->real);
    ag_free(f->data);
    ag_free(f);
}

static void
entry_free(struct gw_entry *e, void *udata)
{
    struct gw_static *st = udata;
    struct file_entry *f = (struct file_entry *)e;
    st->cache_bytes -= f->len;
    file_free(f);
}

static void
resolve_root(struct gw_static *st)
{
    if (realpath(st->root_arg, st->root) == NULL) {
        st->root[0] = '\0';
        st->rootlen = 0;
        return;
    }
    st->rootlen = strlen(st->root);
}

struct gw_static *
gw_static_new(const char *root, uint64_t cache_bytes, uint64_t max_file, uint64_t max_age_ms)
{
    struct gw_static *st = ag_calloc(1, sizeof(*st));
    st->root_arg = ag_strdup(root);
    st->max_bytes = cache_bytes;
    st->max_file = max_file;
    snprintf(st->cache_control, sizeof(st->cache_control), "public, max-age=%llu",
             (unsigned long long)(max_age_ms / 1000));
    gw_table_init(&st->cache, MAX_CACHED_FILES, entry_free, st);
    resolve_root(st);
    if (st->rootlen == 0)
        AG_LOGW("static", "web root '%s' not found; static files answer 404", root);
    return st;
}

void
gw_static_free(struct gw_static *st)
{
    if (st == NULL)
        return;
    gw_table_release(&st->cache);
    ag_free(st->root_arg);
    ag_free(st);
}

/* ---- Path checks ---- */

int
gw_static_clean_path(struct ag_str raw, char *out, size_t outlen)
{
    if (raw.len == 0 || raw.ptr[0] != '/' || raw.len >= outlen)
        return AG_EINVAL;
    size_t n = 0;
    for (size_t i = 0; i < raw.len; i++) {
        char c = raw.ptr[i];
        if (c == '%') {
            int hi = i + 2 < raw.len ? ag_hex_value(raw.ptr[i + 1]) : -1;
            int lo = i + 2 < raw.len ? ag_hex_value(raw.ptr[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return AG_EINVAL;
            c = (char)(hi * 16 + lo);
            i += 2;
            /* An encoded separator or NUL means something else on disk than
             * in the URL: refuse rather than guess. */
            if (c == '\0' || c == '/' || c == '\\')
                return AG_EINVAL;
        } else if (c == '\\' || c == '\0') {
            return AG_EINVAL;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f)
            return AG_EINVAL;
        out[n++] = c;
    }
    out[n] = '\0';
    /* Segments: no "." or "..", no hidden names, no empty ones ("//"). */
    for (size_t i = 0; i < n; i++) {
        if (out[i] != '/')
            continue;
        if (out[i + 1] == '/')
            return AG_ENOENT;
        if (out[i + 1] == '.')
            return AG_ENOENT;
    }
    return 0;
}

/* ---- Serving ---- */

static void
format_etag(const struct stat *sb, char *out, size_t outlen)
{
    snprintf(out, outlen, "\"%llx-%llx.%lx\"", (unsigned long long)sb->st_size,
             (unsigned long long)sb->st_mtim.tv_sec, (unsigned long)sb->st_mtim.tv_nsec);
}

/* Does If-None-Match 'inm' list 'etag' (weak comparison, or "*")? */
static bool
etag_matches(struct ag_str inm, const char *etag)
{
    size_t elen = strlen(etag);
    size_t i = 0;
    while (i < inm.len) {
        while (i < inm.len && (inm.ptr[i] == ' ' || inm.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < inm.len && inm.ptr[i] != ',')
            i++;
        struct ag_str t = ag_str_trim(ag_str_make(inm.ptr + start, i - start));
        if (ag_str_eq_cstr(t, "*"))
            return true;
        if (t.len > 2 && t.ptr[0] == 'W' && t.ptr[1] == '/') {
            t.ptr += 2;
            t.len -= 2;
        }
        if (t.len == elen && memcmp(t.ptr, etag, elen) == 0)
            return true;
    }
    return false;
}

static bool
same_file(const struct file_entry *f, const struct stat *sb)
{
    return f->dev == sb->st_dev && f->ino == sb->st_ino && (off_t)f->len == sb->st_size &&
           f->mtime.tv_sec == sb->st_mtim.tv_sec && f->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

static void
send_not_found(struct ag_http_req *req)
{
    ag_send_error(req, AG_ENOENT, "no file at this path");
}

/* Read the regular file 'real' whole into a new entry. */
static int
load_file(struct gw_static *st, const char *real, struct file_entry **out)
{
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1)
        return AG_ENOENT;
    struct stat sb;
    if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return AG_ENOENT;
    }
    if ((uint64_t)sb.st_size > st->max_file) {
        close(fd);
        AG_LOGW("static", "'%s' is larger than AGORA_GATEWAY_WEB_MAX_FILE", real);
        return AG_ETOOBIG;
    }
    size_t len = (size_t)sb.st_size;
    char *data = ag_malloc(len + 1);
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != len) {
        ag_free(data);
        return AG_EIO;
    }
    struct file_entry *f = ag_calloc(1, sizeof(*f));
    f->data = data;
    f->len = len;
    f->dev = sb.st_dev;
    f->ino = sb.st_ino;
    f->mtime = sb.st_mtim;
    format_etag(&sb, f->etag, sizeof(f->etag));
    f->ctype = gw_static_mime(real);
    f->html = strncmp(f->ctype, "text/html", 9) == 0;
    f->real = ag_strdup(real);
    *out = f;
    return 0;
}

static void
send_file(struct gw_static *st, struct ag_http_req *req, const struct file_entry *f)
{
    ag_http_resp_header(req, "ETag", f->etag);
    ag_http_resp_header(req, "Cache-Control", f->html ? "no-cache" : st->cache_control);
    ag_http_resp_header(req, "X-Content-Type-Options", "nosniff");
    struct ag_str inm = ag_http_req_header(req, "If-None-Match");
    if (inm.len > 0 && etag_matches(inm, f->etag)) {
        ag_http_send(req, 304, NULL, NULL, 0);
        return;
    }
    ag_http_send(req, 200, f->ctype, f->data, f->len);
}

void
gw_static_serve(struct gw_static *st, struct ag_http_req *req)
{
    char path[PATH_MAX];
    int rc = gw_static_clean_path(req->path, path, sizeof(path) - 16);
    if (rc == AG_EINVAL) {
        ag_send_problem(req, 400, "bad-path", "Bad Request", "the path cannot name a file");
        return;
    }
    if (rc != 0) {
        send_not_found(req);
        return;
    }
    if (st->rootlen == 0) {
        resolve_root(st); /* created since start-up? */
        if (st->rootlen == 0) {
            send_not_found(req);
            return;
        }
    }

    /* Cached: one stat() to revalidate. */
    size_t plen = strlen(path);
    uint64_t h = gw_table_hash(&st->cache, path, plen);
    struct file_entry *f = (struct file_entry *)gw_table_find(&st->cache, path, plen, h);
    if (f != NULL) {
        struct stat sb;
        if (stat(f->real, &sb) == 0 && same_file(f, &sb)) {
            send_file(st, req, f);
            return;
        }
        gw_table_remove(&st->cache, &f->e);
    }

    char full[PATH_MAX];
    int n = snprintf(full, sizeof(full), "%s%s", st->root, path);
    if (n < 0 || (size_t)n >= sizeof(full) - 16) {
        send_not_found(req);
        return;
    }
    struct stat sb;
    if (stat(full, &sb) == -1) {
        send_not_found(req);
        return;
    }
    if (S_ISDIR(sb.st_mode)) {
        if (full[n - 1] != '/') {
            /* "/docs" -> "/docs/", so relative links inside resolve. */
            char *loc = req->query.len
                            ? ag_pool_printf(req->pool, "%.*s/?%.*s", AG_STR_FMT(req->path),
                                             AG_STR_FMT(req->query))
                            : ag_pool_printf(req->pool, "%.*s/", AG_STR_FMT(req->path));
            ag_http_resp_header(req, "Location", loc);
            ag_http_send(req, 301, NULL, NULL, 0);
            return;
        }
        memcpy(full + n, "index.html", 11);
    }
    char real[PATH_MAX];
    if (realpath(full, real) == NULL) {
        send_not_found(req);
        return;
    }
    /* Symlinks may point anywhere: the resolved file must be under the root. */
    if (strncmp(real, st->root, st->rootlen) != 0 || real[st->rootlen] != '/') {
        AG_LOGW("static", "refused '%s': resolves outside the web root", path);
        send_not_found(req);
        return;
    }
    rc = load_file(st, real, &f);
    if (rc != 0) {
        if (rc == AG_ETOOBIG)
            ag_send_problem(req, 500, "file-too-large", "Internal Server Error",
                            "the file is larger than the gateway serves");
        else
            send_not_found(req);
        return;
    }
    send_file(st, req, f);
    if (f->len > st->max_bytes) {
        file_free(f);
        return;
    }
    /* Make room by dropping the least recently used files. */
    struct gw_entry *old;
    while (st->cache_bytes + f->len > st->max_bytes && (old = gw_table_oldest(&st->cache)) != NULL)
        gw_table_remove(&st->cache, old);
    f->key = ag_strndup(path, plen);
    f->e.key = f->key;
    f->e.keylen = plen;
    f->e.hash = h;
    st->cache_bytes += f->len;
    gw_table_insert(&st->cache, &f->e);
}
