/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend of the store (struct ag_store_ops) over libpq's
 * synchronous calls on the owner's thread: one connection per store, each
 * cached statement prepared once on the server (PQprepare, a unique name per
 * connection), parameters sent as text (bytea as binary), results read as
 * text, and the mapping of SQLSTATE codes onto AG_E* codes. Serializable
 * transactions; store.c retries them on a serialization failure. libpq is
 * loaded at the first PostgreSQL open (agora/dynlib.h), not linked: a
 * program on SQLite never maps it nor OpenSSL, Kerberos and LDAP behind it. */
#include "agora/base.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "agora/dynlib.h"
#include "agora/err.h"
#include "agora/mem.h"
#include "agora/store.h"
#include "store_int.h"

#define BYTEA_OID        17
#define BOOL_OID         16
#define TEXT_OID         25
#define MAX_TYPED_PARAMS 64 /* parameters the "$n IS NULL" retry can type */
#define CONNECT_TIMEOUT  "5"
#define PG_MAX_PARAM_LEN ((size_t)1 << 30) /* PostgreSQL's 1 GB field limit */

struct pg_conn {
    PGconn *conn;
    uint64_t gen;          /* bumped at every reconnect: statements re-prepare */
    uint64_t next_id;      /* statement names "ag_<id>", unique per connection */
    int64_t changes;       /* rows of the last INSERT/UPDATE/DELETE */
    bool lazy_next;        /* the next BEGIN sets synchronous_commit off locally */
    bool tx_open;          /* between a successful BEGIN and COMMIT/ROLLBACK */
    char lock_timeout[24]; /* "<ms>" from busy_timeout_ms, re-applied on reconnect */
    bool normal;           /* AG_STORE_NORMAL: synchronous_commit off for the session */
};

struct pg_blob {
    unsigned char *p; /* PQunescapeBytea buffer plus a NUL, or NULL if not decoded */
    size_t len;
};

struct pg_stmt {
    struct pg_conn *pc;  /* owner connection */
    char name[32];       /* server-side name */
    char *sql;           /* owned copy, to re-prepare after a reconnect */
    uint64_t gen;        /* connection generation it was prepared in */
    int nparams;         /* from PQdescribePrepared */
    int ncols;           /* from PQdescribePrepared (then from the result) */
    char **vals;         /* 'nparams' owned values, NULL = SQL NULL */
    int *lens;           /* byte lengths (binary parameters) */
    int *fmts;           /* 0 text, 1 binary */
    PGresult *res;       /* result once executed */
    int row;             /* current row, -1 before the first */
    bool executed;       /* stepped since the last reset */
    struct pg_blob *dec; /* 'ncols' decoded bytea values of the current row */
};

/* ---- libpq, loaded at run time ------------------------------------------- */

/* Every libpq function this file calls. The prototypes of <libpq-fe.h> give
 * the pointers their types; a call missing here fails to link, since the
 * binaries no longer link libpq. */
#define PQ_FUNCS(X)                                                                                \
    X(PQclear)                                                                                     \
    X(PQcmdStatus)                                                                                 \
    X(PQcmdTuples)                                                                                 \
    X(PQconnectdbParams)                                                                           \
    X(PQdescribePrepared)                                                                          \
    X(PQerrorMessage)                                                                              \
    X(PQexec)                                                                                      \
    X(PQexecPrepared)                                                                              \
    X(PQfinish)                                                                                    \
    X(PQfreemem)                                                                                   \
    X(PQftype)                                                                                     \
    X(PQgetisnull)                                                                                 \
    X(PQgetlength)                                                                                 \
    X(PQgetvalue)                                                                                  \
    X(PQnfields)                                                                                   \
    X(PQnparams)                                                                                   \
    X(PQntuples)                                                                                   \
    X(PQprepare)                                                                                   \
    X(PQreset)                                                                                     \
    X(PQresultErrorField)                                                                          \
    X(PQresultErrorMessage)                                                                        \
    X(PQresultStatus)                                                                              \
    X(PQsetNoticeProcessor)                                                                        \
    X(PQstatus)                                                                                    \
    X(PQtransactionStatus)                                                                         \
    X(PQunescapeBytea)

#define PQ_FIELD(f) __typeof__(f) *p_##f;
static struct {
    PQ_FUNCS(PQ_FIELD)
} pq;
#define PQ_SYM(f) { #f, (void **)&pq.p_##f },
static const struct ag_dynlib_sym pq_syms[] = { PQ_FUNCS(PQ_SYM) };
static struct ag_dynlib pq_lib = { "libpq.so.5", "libpq5", pq_syms, AG_ARRAY_SIZE(pq_syms), NULL };

/* The call sites below read as plain libpq. */
#define PQclear              (*pq.p_PQclear)
#define PQcmdStatus          (*pq.p_PQcmdStatus)
#define PQcmdTuples          (*pq.p_PQcmdTuples)
#define PQconnectdbParams    (*pq.p_PQconnectdbParams)
#define PQdescribePrepared   (*pq.p_PQdescribePrepared)
#define PQerrorMessage       (*pq.p_PQerrorMessage)
#define PQexec               (*pq.p_PQexec)
#define PQexecPrepared       (*pq.p_PQexecPrepared)
#define PQfinish             (*pq.p_PQfinish)
#define PQfreemem            (*pq.p_PQfreemem)
#define PQftype              (*pq.p_PQftype)
#define PQgetisnull          (*pq.p_PQgetisnull)
#define PQgetlength          (*pq.p_PQgetlength)
#define PQgetvalue           (*pq.p_PQgetvalue)
#define PQnfields            (*pq.p_PQnfields)
#define PQnparams            (*pq.p_PQnparams)
#define PQntuples            (*pq.p_PQntuples)
#define PQprepare            (*pq.p_PQprepare)
#define PQreset              (*pq.p_PQreset)
#define PQresultErrorField   (*pq.p_PQresultErrorField)
#define PQresultErrorMessage (*pq.p_PQresultErrorMessage)
#define PQresultStatus       (*pq.p_PQresultStatus)
#define PQsetNoticeProcessor (*pq.p_PQsetNoticeProcessor)
#define PQstatus             (*pq.p_PQstatus)
#define PQtransactionStatus  (*pq.p_PQtransactionStatus)
#define PQunescapeBytea      (*pq.p_PQunescapeBytea)

#define PC(store) ((struct pg_conn *)(store)->be)
#define PS(st)    ((struct pg_stmt *)(st)->be)

/* ---- Errors -------------------------------------------------------------- */

static int
map_sqlstate(const char *state)
{
    if (state == NULL)
        return AG_EIO;
    if (strcmp(state, "23505") == 0)
        return AG_EEXIST;
    if (strncmp(state, "23", 2) == 0)
        return AG_ECONFLICT;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
        return AG_EBUSY;
    /* Data exceptions (a value out of range, bad input syntax for a type):
     * the value was wrong, not the database. */
    if (strncmp(state, "22", 2) == 0)
        return AG_EINVAL;
    return AG_EIO;
}

/* Strip the trailing newline libpq puts on its messages. */
static void
set_msg(struct ag_store *store, const char *prefix, const char *msg)
{
    size_t len = msg ? strlen(msg) : 0;
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    ag__store_set_err(store, "%s%.*s", prefix, (int)len, msg ? msg : "");
}

/* Record the failure of 'res' (may be NULL: the connection failed) and
 * return its code. Frees nothing. */
static int
fail_res(struct ag_store *store, const PGresult *res)
{
    PGconn *c = PC(store)->conn;
    store->tx_retryable = false;
    if (res == NULL || PQstatus(c) == CONNECTION_BAD) {
        set_msg(store, "postgres: ", PQerrorMessage(c));
        return AG_EIO;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorMessage(res);
    set_msg(store, "", msg && *msg ? msg : PQerrorMessage(c));
    if (state != NULL && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0))
        store->tx_retryable = true;
    return map_sqlstate(state);
}

/* ---- Connection ---------------------------------------------------------- */

/* Session settings, applied at connect and after every reconnect. */
static int
session_setup(struct ag_store *store)
{
    struct pg_conn *pc = PC(store);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SET synchronous_commit = %s; SET lock_timeout = %s;"
             " SET default_transaction_isolation = 'read committed'",
             pc->normal ? "off" : "on", pc->lock_timeout);
    PGresult *res = PQexec(pc->conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : fail_res(store, res);
    PQclear(res);
    return rc;
}

/* Reconnect a broken connection outside a transaction (a server restart or
 * a dropped socket); cached statements re-prepare on their next use. */
static int
ensure_conn(struct ag_store *store)
{
    struct pg_conn *pc = PC(store);
    if (PQstatus(pc->conn) == CONNECTION_OK)
        return 0;
    PQreset(pc->conn);
    if (PQstatus(pc->conn) != CONNECTION_OK) {
        set_msg(store, "postgres: cannot reconnect: ", PQerrorMessage(pc->conn));
        return AG_EIO;
    }
    pc->gen++;
    return session_setup(store);
}

/* Before a statement: a connection lost outside a transaction is opened
 * again; inside one the transaction is gone, which the caller must see. */
static int
ready(struct ag_store *store)
{
    struct pg_conn *pc = PC(store);
    if (PQstatus(pc->conn) == CONNECTION_OK)
        return 0;
    if (pc->tx_open) {
        set_msg(store, "postgres: connection lost in a transaction: ", PQerrorMessage(pc->conn));
        return AG_EIO;
    }
    return ensure_conn(store);
}

static void
silent_notice(void *arg, const char *message)
{
    /* Notices ("relation already exists, skipping") are not errors; the
     * store logs nothing. */
    AG_UNUSED(arg);
    AG_UNUSED(message);
}

static int
pg_open(struct ag_store *store, const struct ag_store_config *cfg)
{
    char why[sizeof(store->errmsg)];
    int rc = ag_dynlib_load(&pq_lib, why, sizeof(why));
    if (rc != 0) {
        ag__store_set_err(store, "%s", why);
        return rc;
    }
    struct pg_conn *pc = ag_calloc(1, sizeof(*pc));
    pc->normal = cfg->durability == AG_STORE_NORMAL;
    snprintf(pc->lock_timeout, sizeof(pc->lock_timeout), "%d", cfg->busy_timeout_ms);
    /* Keywords are processed in order, so the URL (expanded from 'dbname')
     * overrides the defaults before it. */
    const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
    const char *const vals[] = { CONNECT_TIMEOUT, "agora", cfg->path, NULL };
    pc->conn = PQconnectdbParams(keys, vals, 1);
    store->be = pc;
    if (pc->conn == NULL) {
        ag__store_set_err(store, "postgres: out of memory");
        return AG_EIO;
    }
    if (PQstatus(pc->conn) != CONNECTION_OK) {
        /* libpq's message names host and port, never the password. */
        set_msg(store, "cannot connect to postgres: ", PQerrorMessage(pc->conn));
        return AG_EIO;
    }
    PQsetNoticeProcessor(pc->conn, silent_notice, NULL);
    return session_setup(store);
}

static void
pg_close(struct ag_store *store)
{
    struct pg_conn *pc = PC(store);
    if (pc == NULL)
        return;
    PQfinish(pc->conn);
    ag_free(pc);
    store->be = NULL;
}

static int
pg_exec(struct ag_store *store, const char *sql)
{
    struct pg_conn *pc = PC(store);
    int rc0 = ready(store);
    if (rc0 != 0)
        return rc0;
    PGresult *res = PQexec(pc->conn, sql);
    ExecStatusType s = PQresultStatus(res);
    int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY
                 ? 0
                 : fail_res(store, res);
    PQclear(res);
    return rc;
}

static int
pg_begin(struct ag_store *store)
{
    struct pg_conn *pc = PC(store);
    /* SQLite's single writer makes every transaction serializable; keep
     * that guarantee when several instances share one database. */
    int rc = pg_exec(store, pc->lazy_next ? "BEGIN ISOLATION LEVEL SERIALIZABLE;"
                                            " SET LOCAL synchronous_commit = off"
                                          : "BEGIN ISOLATION LEVEL SERIALIZABLE");
    pc->tx_open = rc == 0;
    return rc;
}

/* A lazy transaction sets synchronous_commit off with SET LOCAL in its
 * BEGIN, so nothing has to be switched back afterwards. */
static int
pg_set_sync(struct ag_store *store, bool durable)
{
    PC(store)->lazy_next = !durable;
    return 0;
}

static int
pg_commit(struct ag_store *store)
{
    struct pg_conn *pc = PC(store);
    if (PQstatus(pc->conn) != CONNECTION_OK || PQtransactionStatus(pc->conn) == PQTRANS_IDLE) {
        pc->tx_open = false;
        ag__store_set_err(store, PQstatus(pc->conn) != CONNECTION_OK
                                     ? "cannot commit: connection to postgres lost"
                                     : "cannot commit: no transaction is open");
        return AG_EIO;
    }
    if (PQtransactionStatus(pc->conn) == PQTRANS_INERROR) {
        /* COMMIT of an aborted transaction "succeeds" as a ROLLBACK. */
        PGresult *res = PQexec(pc->conn, "ROLLBACK");
        PQclear(res);
        pc->tx_open = false;
        ag__store_set_err(store, "cannot commit: an earlier statement failed the transaction");
        return AG_EIO;
    }
    PGresult *res = PQexec(pc->conn, "COMMIT");
    /* A failed COMMIT ends the transaction too (it is rolled back). */
    pc->tx_open =
        PQtransactionStatus(pc->conn) != PQTRANS_IDLE && PQstatus(pc->conn) == CONNECTION_OK;
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : fail_res(store, res);
    if (rc == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        ag__store_set_err(store, "transaction rolled back at commit");
        rc = AG_EIO;
    }
    PQclear(res);
    return rc;
}

static int
pg_rollback(struct ag_store *store)
{
    struct pg_conn *pc = PC(store);
    pc->tx_open = false;
    PGresult *res = PQexec(pc->conn, "ROLLBACK");
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : fail_res(store, res);
    PQclear(res);
    return rc;
}

static bool
pg_in_tx(struct ag_store *store)
{
    struct pg_conn *pc = PC(store);
    if (PQstatus(pc->conn) != CONNECTION_OK)
        return pc->tx_open;
    PGTransactionStatusType t = PQtransactionStatus(pc->conn);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int64_t
pg_changes(struct ag_store *store)
{
    return PC(store)->changes;
}

/* ---- Statements ---------------------------------------------------------- */

/* Prepare 'ps' on the server under its name and learn its shape. */
static int
server_prepare(struct ag_store *store, struct pg_stmt *ps)
{
    struct pg_conn *pc = PC(store);
    /* Parameter types are left to the server (OID 0). A parameter it
     * cannot type from its context alone (only in "$n IS NULL") is
     * declared text and the statement prepared again: services write such
     * tests for optional text filters. */
    Oid types[MAX_TYPED_PARAMS] = { 0 };
    int ntypes = 0;
    PGresult *res = PQprepare(pc->conn, ps->name, ps->sql, 0, NULL);
    for (int tries = 0; tries < MAX_TYPED_PARAMS; tries++) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *dollar = msg != NULL ? strstr(msg, "parameter $") : NULL;
        if (PQresultStatus(res) == PGRES_COMMAND_OK || state == NULL ||
            (strcmp(state, "42P18") != 0 && strcmp(state, "42P08") != 0) || dollar == NULL ||
            PQtransactionStatus(pc->conn) == PQTRANS_INERROR)
            break;
        long n = strtol(dollar + strlen("parameter $"), NULL, 10);
        if (n < 1 || n > MAX_TYPED_PARAMS || types[n - 1] != 0)
            break;
        types[n - 1] = TEXT_OID;
        ntypes = AG_MAX(ntypes, (int)n);
        PQclear(res);
        res = PQprepare(pc->conn, ps->name, ps->sql, ntypes, types);
    }
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = fail_res(store, res);
        /* Syntax errors, unknown tables or columns, several statements:
         * a programming error. */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && (strncmp(state, "42", 2) == 0 || strncmp(state, "0A", 2) == 0))
            rc = AG_EINVAL;
        PQclear(res);
        return rc;
    }
    PQclear(res);
    res = PQdescribePrepared(pc->conn, ps->name);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = fail_res(store, res);
        PQclear(res);
        return rc;
    }
    ps->nparams = PQnparams(res);
    ps->ncols = PQnfields(res);
    PQclear(res);
    ps->gen = pc->gen;
    return 0;
}

static void
clear_decoded(struct pg_stmt *ps)
{
    if (ps->dec == NULL)
        return;
    for (int i = 0; i < ps->ncols; i++) {
        ag_free(ps->dec[i].p);
        ps->dec[i].p = NULL;
        ps->dec[i].len = 0;
    }
}

static void
free_params(struct pg_stmt *ps)
{
    for (int i = 0; ps->vals != NULL && i < ps->nparams; i++) {
        ag_free(ps->vals[i]);
        ps->vals[i] = NULL;
        ps->lens[i] = 0;
        ps->fmts[i] = 0;
    }
}

static void
free_stmt(struct pg_stmt *ps)
{
    clear_decoded(ps);
    ag_free(ps->dec);
    free_params(ps);
    ag_free(ps->vals);
    ag_free(ps->lens);
    ag_free(ps->fmts);
    PQclear(ps->res);
    ag_free(ps->sql);
    ag_free(ps);
}

static int
pg_prepare(struct ag_store *store, const char *sql, void **out_be)
{
    struct pg_conn *pc = PC(store);
    int rc0 = ready(store);
    if (rc0 != 0)
        return rc0;
    struct pg_stmt *ps = ag_calloc(1, sizeof(*ps));
    ps->pc = pc;
    ps->sql = ag_strdup(sql);
    ps->row = -1;
    snprintf(ps->name, sizeof(ps->name), "ag_%" PRIu64, ++pc->next_id);
    int rc = server_prepare(store, ps);
    if (rc != 0) {
        free_stmt(ps);
        return rc;
    }
    if (ps->nparams > 0) {
        ps->vals = ag_calloc((size_t)ps->nparams, sizeof(*ps->vals));
        ps->lens = ag_calloc((size_t)ps->nparams, sizeof(*ps->lens));
        ps->fmts = ag_calloc((size_t)ps->nparams, sizeof(*ps->fmts));
    }
    *out_be = ps;
    return 0;
}

static void
pg_finalize(void *be)
{
    struct pg_stmt *ps = be;
    PGconn *c = ps->pc->conn;
    /* Free the server-side statement unless the connection is gone or its
     * transaction is failed (the name is never reused, so a leftover is
     * harmless until the connection closes). */
    if (ps->gen == ps->pc->gen && PQstatus(c) == CONNECTION_OK &&
        PQtransactionStatus(c) != PQTRANS_INERROR) {
        char sql[48];
        snprintf(sql, sizeof(sql), "DEALLOCATE %s", ps->name);
        PQclear(PQexec(c, sql));
    }
    free_stmt(ps);
}

static void
pg_reset(struct ag_stmt *st)
{
    struct pg_stmt *ps = PS(st);
    clear_decoded(ps);
    PQclear(ps->res);
    ps->res = NULL;
    ps->row = -1;
    ps->executed = false;
    free_params(ps);
}

static int
bind_check(struct ag_stmt *st, int n, size_t len)
{
    struct pg_stmt *ps = PS(st);
    if (n < 1 || n > ps->nparams) {
        ag__store_set_err(st->store, "no parameter $%d in statement", n);
        return AG_EINVAL;
    }
    if (ps->executed) {
        ag__store_set_err(st->store, "cannot bind $%d: statement stepped and not reset", n);
        return AG_EINVAL;
    }
    if (len >= PG_MAX_PARAM_LEN) {
        ag__store_set_err(st->store, "value for $%d too big", n);
        return AG_ETOOBIG;
    }
    return 0;
}

static int
bind_value(struct ag_stmt *st, int n, const void *p, size_t len, int fmt)
{
    int rc = bind_check(st, n, len);
    if (rc != 0)
        return rc;
    struct pg_stmt *ps = PS(st);
    ag_free(ps->vals[n - 1]);
    char *v = ag_malloc(len + 1);
    if (len > 0)
        memcpy(v, p, len);
    v[len] = '\0';
    ps->vals[n - 1] = v;
    ps->lens[n - 1] = (int)len;
    ps->fmts[n - 1] = fmt;
    return 0;
}

static int
pg_bind_text(struct ag_stmt *st, int n, const char *s, size_t len)
{
    /* Text parameters end at their first NUL: PostgreSQL text holds none. */
    if (s != NULL && memchr(s, '\0', len) != NULL) {
        ag__store_set_err(st->store, "text for $%d contains a NUL byte", n);
        return AG_EINVAL;
    }
    return bind_value(st, n, s ? s : "", s ? len : 0, 0);
}

static int
pg_bind_i64(struct ag_stmt *st, int n, int64_t v)
{
    char buf[24];
    int len = snprintf(buf, sizeof(buf), "%" PRId64, v);
    return bind_value(st, n, buf, (size_t)len, 0);
}

static int
pg_bind_double(struct ag_stmt *st, int n, double v)
{
    char buf[40];
    int len;
    if (v != v)
        len = snprintf(buf, sizeof(buf), "NaN");
    else if (v > 1.7976931348623157e308)
        len = snprintf(buf, sizeof(buf), "Infinity");
    else if (v < -1.7976931348623157e308)
        len = snprintf(buf, sizeof(buf), "-Infinity");
    else
        len = snprintf(buf, sizeof(buf), "%.17g", v);
    return bind_value(st, n, buf, (size_t)len, 0);
}

static int
pg_bind_null(struct ag_stmt *st, int n)
{
    int rc = bind_check(st, n, 0);
    if (rc != 0)
        return rc;
    struct pg_stmt *ps = PS(st);
    ag_free(ps->vals[n - 1]);
    ps->vals[n - 1] = NULL;
    ps->lens[n - 1] = 0;
    ps->fmts[n - 1] = 0;
    return 0;
}

static int
pg_bind_blob(struct ag_stmt *st, int n, const void *p, size_t len)
{
    /* Binary format: the bytes as they are, for a bytea parameter. */
    return bind_value(st, n, p, p ? len : 0, 1);
}

/* Rows changed, for ag_store_changes: only INSERT, UPDATE and DELETE (also
 * with RETURNING) count, as in SQLite. */
static void
note_changes(struct pg_conn *pc, PGresult *res)
{
    const char *tag = PQcmdStatus(res);
    if (strncmp(tag, "INSERT", 6) == 0 || strncmp(tag, "UPDATE", 6) == 0 ||
        strncmp(tag, "DELETE", 6) == 0) {
        const char *n = PQcmdTuples(res);
        pc->changes = *n ? strtoll(n, NULL, 10) : 0;
    }
}

static int
execute(struct ag_stmt *st)
{
    struct ag_store *store = st->store;
    struct pg_stmt *ps = PS(st);
    struct pg_conn *pc = ps->pc;
    int rc0 = ready(store);
    if (rc0 != 0)
        return rc0;
    if (ps->gen != pc->gen) {
        int rc = server_prepare(store, ps);
        if (rc != 0)
            return rc;
    }
    ps->executed = true;
    ps->res = PQexecPrepared(pc->conn, ps->name, ps->nparams, (const char *const *)ps->vals,
                             ps->lens, ps->fmts, 0);
    ExecStatusType s = PQresultStatus(ps->res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        int rc = fail_res(store, ps->res);
        PQclear(ps->res);
        ps->res = NULL;
        return rc;
    }
    note_changes(pc, ps->res);
    ps->ncols = PQnfields(ps->res);
    if (ps->dec == NULL && ps->ncols > 0)
        ps->dec = ag_calloc((size_t)ps->ncols, sizeof(*ps->dec));
    return 0;
}

static int
pg_step(struct ag_stmt *st)
{
    struct pg_stmt *ps = PS(st);
    if (!ps->executed) {
        int rc = execute(st);
        if (rc != 0)
            return rc;
    }
    if (ps->res == NULL)
        return AG_STMT_DONE;
    clear_decoded(ps);
    if (ps->row + 1 < PQntuples(ps->res)) {
        ps->row++;
        return AG_STMT_ROW;
    }
    ps->row = PQntuples(ps->res);
    return AG_STMT_DONE;
}

static int
pg_ncols(struct ag_stmt *st)
{
    return PS(st)->ncols;
}

static bool
has_row(struct pg_stmt *ps)
{
    return ps->res != NULL && ps->row >= 0 && ps->row < PQntuples(ps->res);
}

static bool
pg_col_is_null(struct ag_stmt *st, int i)
{
    struct pg_stmt *ps = PS(st);
    return !has_row(ps) || PQgetisnull(ps->res, ps->row, i);
}

static const char *
raw_text(struct pg_stmt *ps, int i)
{
    return has_row(ps) ? PQgetvalue(ps->res, ps->row, i) : "";
}

static int64_t
pg_col_i64(struct ag_stmt *st, int i)
{
    struct pg_stmt *ps = PS(st);
    const char *s = raw_text(ps, i);
    if (has_row(ps) && PQftype(ps->res, i) == BOOL_OID)
        return s[0] == 't';
    /* Like SQLite: text that is not a number reads as its numeric prefix
     * (a numeric "12.50" reads 12). */
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    return v;
}

static double
pg_col_double(struct ag_stmt *st, int i)
{
    return strtod(raw_text(PS(st), i), NULL);
}

/* The bytes of a bytea value of the current row, decoded once. */
static struct pg_blob *
decoded(struct pg_stmt *ps, int i)
{
    if (!has_row(ps) || PQftype(ps->res, i) != BYTEA_OID || PQgetisnull(ps->res, ps->row, i))
        return NULL;
    struct pg_blob *b = &ps->dec[i];
    if (b->p == NULL) {
        size_t len = 0;
        unsigned char *raw =
            PQunescapeBytea((const unsigned char *)PQgetvalue(ps->res, ps->row, i), &len);
        b->p = ag_malloc(len + 1);
        if (raw != NULL && len > 0)
            memcpy(b->p, raw, len);
        b->p[len] = '\0';
        b->len = raw != NULL ? len : 0;
        PQfreemem(raw);
    }
    return b;
}

static const char *
pg_col_text(struct ag_stmt *st, int i)
{
    struct pg_blob *b = decoded(PS(st), i);
    return b != NULL ? (const char *)b->p : raw_text(PS(st), i);
}

static size_t
pg_col_len(struct ag_stmt *st, int i)
{
    struct pg_stmt *ps = PS(st);
    struct pg_blob *b = decoded(ps, i);
    if (b != NULL)
        return b->len;
    return has_row(ps) ? (size_t)PQgetlength(ps->res, ps->row, i) : 0;
}

static const void *
pg_col_blob(struct ag_stmt *st, int i)
{
    struct pg_stmt *ps = PS(st);
    struct pg_blob *b = decoded(ps, i);
    if (b != NULL)
        return b->len > 0 ? b->p : NULL;
    /* Not a bytea column: the text bytes, as SQLite gives them. */
    if (!has_row(ps) || PQgetisnull(ps->res, ps->row, i) || PQgetlength(ps->res, ps->row, i) == 0)
        return NULL;
    return PQgetvalue(ps->res, ps->row, i);
}

const struct ag_store_ops ag__store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .begin = pg_begin,
    .set_sync = pg_set_sync,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .in_tx = pg_in_tx,
    .changes = pg_changes,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .bind_text = pg_bind_text,
    .bind_i64 = pg_bind_i64,
    .bind_double = pg_bind_double,
    .bind_null = pg_bind_null,
    .bind_blob = pg_bind_blob,
    .step = pg_step,
    .ncols = pg_ncols,
    .col_is_null = pg_col_is_null,
    .col_i64 = pg_col_i64,
    .col_double = pg_col_double,
    .col_text = pg_col_text,
    .col_len = pg_col_len,
    .col_blob = pg_col_blob,
};
