/* SPDX-License-Identifier: MIT */
/* Unit tests of the service layer's request and response helpers
 * (service.c) over HTTP, on a service running in this process: the error
 * table answers of ag_send_error, ag_send_store_error, ag_req_query_int,
 * ag_req_is_json with ag_req_json, and ag_http_method_name. A client thread
 * sends the requests and then stops the service with SIGTERM; the main
 * thread checks the answers it collected. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agora/err.h"
#include "agora/http_server.h"
#include "agora/mem.h"
#include "agora/service.h"
#include "agora/time.h"

#define MAX_CALLS 32

/* ---- The service under test ---- */

static const struct ag_migration MIGRATIONS[] = {
    { 1, "0001_init", "CREATE TABLE t (id INTEGER PRIMARY KEY)", NULL },
};

/* GET /error?code=N[&detail=1]: ag_send_error(-N), with a formatted detail
 * when asked. */
static void
send_error_route(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(udata);
    int64_t code = 0;
    int64_t detail = 0;
    if (ag_req_query_int(req, "code", 0, 1000, &code) != 0 ||
        ag_req_query_int(req, "detail", 0, 1, &detail) != 0)
        return;
    if (detail)
        ag_send_error(req, (int)-code, "detail %d of '%s'", 7, "x");
    else
        ag_send_error(req, (int)-code, NULL);
}

/* GET /store?code=N: ag_send_store_error(-N, "widget"). */
static void
store_error_route(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(udata);
    int64_t code = 0;
    if (ag_req_query_int(req, "code", 0, 1000, &code) != 0)
        return;
    ag_send_store_error(req, (int)-code, "widget");
}

/* GET /int[?n=...]: n from 1 to 100, default 7. */
static void
int_route(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(udata);
    int64_t n = 7;
    if (ag_req_query_int(req, "n", 1, 100, &n) != 0)
        return;
    ag_send_json(req, 200, json_pack("{s:I}", "n", (json_int_t)n));
}

/* POST /json: what ag_req_is_json says, then the parsed body. */
static void
json_route(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(udata);
    bool is_json = ag_req_is_json(req);
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    ag_send_json(req, 200, json_pack("{s:b, s:O}", "is_json", is_json, "body", body));
}

static const struct ag_route ROUTES[] = {
    { "GET", "/error", send_error_route, AG_ROLE_PUBLIC },
    { "GET", "/store", store_error_route, AG_ROLE_PUBLIC },
    { "GET", "/int", int_route, AG_ROLE_PUBLIC },
    { "POST", "/json", json_route, AG_ROLE_PUBLIC },
};

/* ---- The client thread ---- */

struct call {
    const char *request; /* raw request head (and body), without Host/Connection */
    int status;          /* answered status, 0 when none */
    char *text;          /* whole answer, owned */
    json_t *body;        /* parsed body, or NULL */
};

struct client {
    int port;
    struct call calls[MAX_CALLS];
    size_t ncalls;
};

static int
connect_retry(int port)
{
    uint64_t deadline = ag_time_mono_ms() + 10000;
    while (ag_time_mono_ms() < deadline) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd == -1)
            return -1;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            return fd;
        close(fd);
        usleep(10000);
    }
    return -1;
}

static void
run_call(int port, struct call *c)
{
    int fd = connect_retry(port);
    if (fd == -1)
        return;
    /* The request line, then our headers, then the caller's headers and body. */
    const char *eol = strstr(c->request, "\r\n");
    char raw[1024];
    int n = snprintf(raw, sizeof(raw), "%.*s\r\nHost: test\r\nConnection: close\r\n%s",
                     (int)(eol - c->request), c->request, eol + 2);
    if (write(fd, raw, (size_t)n) != n) {
        close(fd);
        return;
    }
    size_t len = 0;
    size_t cap = 4096;
    char *text = ag_calloc(1, cap);
    ssize_t r;
    while ((r = read(fd, text + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap)
            break;
    }
    close(fd);
    text[len] = '\0';
    c->text = text;
    sscanf(text, "HTTP/1.1 %d", &c->status);
    const char *body = strstr(text, "\r\n\r\n");
    if (body != NULL)
        c->body = json_loads(body + 4, 0, NULL);
}

static void *
client_main(void *arg)
{
    struct client *cl = arg;
    for (size_t i = 0; i < cl->ncalls; i++)
        run_call(cl->port, &cl->calls[i]);
    kill(getpid(), SIGTERM);
    return NULL;
}

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        fail_msg("no free port");
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- Checks ---- */

static void
expect_problem(const struct call *c, int status, const char *slug, const char *title,
               const char *detail)
{
    if (c->status != status)
        fail_msg("%s: status %d, want %d: %s", c->request, c->status, status,
                 c->text ? c->text : "(no answer)");
    assert_non_null(strstr(c->text, "Content-Type: application/problem+json"));
    char type[128];
    snprintf(type, sizeof(type), "urn:agora:problem:%s", slug);
    assert_string_equal(json_string_value(json_object_get(c->body, "type")), type);
    assert_string_equal(json_string_value(json_object_get(c->body, "title")), title);
    assert_int_equal(json_integer_value(json_object_get(c->body, "status")), status);
    if (detail != NULL)
        assert_string_equal(json_string_value(json_object_get(c->body, "detail")), detail);
    assert_non_null(json_object_get(c->body, "request_id"));
}

static void
test_helpers_over_http(void **state)
{
    AG_UNUSED(state);
    static struct client cl;
    static const char *const requests[] = {
        /* 0-6: ag_send_error */
        "GET /error?code=3 HTTP/1.1\r\n\r\n",
        "GET /error?code=3&detail=1 HTTP/1.1\r\n\r\n",
        "GET /error?code=19 HTTP/1.1\r\n\r\n",
        "GET /error?code=22&detail=1 HTTP/1.1\r\n\r\n",
        "GET /error?code=9 HTTP/1.1\r\n\r\n",
        "GET /error?code=0 HTTP/1.1\r\n\r\n",
        "GET /error?code=999 HTTP/1.1\r\n\r\n",
        /* 7-9: ag_send_store_error */
        "GET /store?code=3 HTTP/1.1\r\n\r\n",
        "GET /store?code=9 HTTP/1.1\r\n\r\n",
        "GET /store?code=8 HTTP/1.1\r\n\r\n",
        /* 10-16: ag_req_query_int */
        "GET /int HTTP/1.1\r\n\r\n",
        "GET /int?n=100 HTTP/1.1\r\n\r\n",
        "GET /int?n=0 HTTP/1.1\r\n\r\n",
        "GET /int?n=101 HTTP/1.1\r\n\r\n",
        "GET /int?n=1x HTTP/1.1\r\n\r\n",
        "GET /int?n= HTTP/1.1\r\n\r\n",
        "GET /int?n=%zz HTTP/1.1\r\n\r\n",
        /* 17-21: ag_req_is_json and ag_req_json */
        "POST /json HTTP/1.1\r\nContent-Type: application/json; charset=utf-8\r\n"
        "Content-Length: 7\r\n\r\n{\"a\":1}",
        "POST /json HTTP/1.1\r\nContent-Type: application/merge-patch+json\r\n"
        "Content-Length: 2\r\n\r\n{}",
        "POST /json HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
        "POST /json HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        "POST /json HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n[1]",
        /* 22-23: the middleware's own answers */
        "DELETE /int HTTP/1.1\r\n\r\n",
        "GET /nowhere HTTP/1.1\r\n\r\n",
    };
    memset(&cl, 0, sizeof(cl));
    cl.port = free_port();
    cl.ncalls = AG_ARRAY_SIZE(requests);
    for (size_t i = 0; i < cl.ncalls; i++)
        cl.calls[i].request = requests[i];

    char port[16];
    snprintf(port, sizeof(port), "%d", cl.port);
    setenv("AGORA_HTTP_PORT", port, 1);
    setenv("AGORA_DB_PATH", ":memory:", 1);
    setenv("AGORA_ACCESS_LOG", "false", 1);
    setenv("AGORA_REGISTRY_URL", "", 1);
    struct ag_service_config cfg = {
        .name = "testsvc",
        .migrations = MIGRATIONS,
        .nmigrations = AG_ARRAY_SIZE(MIGRATIONS),
    };
    char *argv[] = { "test_service", NULL };
    struct ag_service *svc;
    assert_int_equal(ag_service_init(&svc, 1, argv, &cfg), 0);
    assert_int_equal(ag_service_routes(svc, ROUTES, AG_ARRAY_SIZE(ROUTES), NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &cl), 0);
    int status = ag_service_run(svc);
    pthread_join(th, NULL);
    ag_service_free(svc);
    assert_int_equal(status, 0);

    struct call *c = cl.calls;
    expect_problem(&c[0], 404, "not-found", "Not Found", "not found");
    expect_problem(&c[1], 404, "not-found", "Not Found", "detail 7 of 'x'");
    expect_problem(&c[2], 400, "bad-query", "Bad Request", "bad query parameter");
    expect_problem(&c[3], 428, "precondition-required", "Precondition Required", "detail 7 of 'x'");
    expect_problem(&c[4], 503, "unavailable", "Service Unavailable", "busy");
    expect_problem(&c[5], 500, "internal", "Internal Server Error", NULL);
    expect_problem(&c[6], 500, "internal", "Internal Server Error", "unknown error");

    expect_problem(&c[7], 404, "not-found", "Not Found", "no such widget");
    expect_problem(&c[8], 503, "unavailable", "Service Unavailable", NULL);
    expect_problem(&c[9], 500, "internal", "Internal Server Error", "internal error");

    assert_int_equal(c[10].status, 200);
    assert_int_equal(json_integer_value(json_object_get(c[10].body, "n")), 7);
    assert_int_equal(c[11].status, 200);
    assert_int_equal(json_integer_value(json_object_get(c[11].body, "n")), 100);
    for (size_t i = 12; i <= 15; i++)
        expect_problem(&c[i], 400, "bad-query", "Bad Request",
                       "query parameter 'n' must be an integer from 1 to 100");
    expect_problem(&c[16], 400, "bad-query", "Bad Request",
                   "malformed percent-encoding in the query");

    assert_int_equal(c[17].status, 200);
    assert_true(json_is_true(json_object_get(c[17].body, "is_json")));
    assert_int_equal(c[18].status, 200);
    assert_true(json_is_true(json_object_get(c[18].body, "is_json")));
    expect_problem(&c[19], 415, "unsupported-media-type", "Unsupported Media Type", NULL);
    expect_problem(&c[20], 415, "unsupported-media-type", "Unsupported Media Type", NULL);
    expect_problem(&c[21], 400, "malformed-json", "Bad Request",
                   "malformed JSON: the top-level JSON value must be an object");

    expect_problem(&c[22], 405, "method-not-allowed", "Method Not Allowed", NULL);
    expect_problem(&c[23], 404, "not-found", "Not Found", "no resource at this path");

    for (size_t i = 0; i < cl.ncalls; i++) {
        ag_free(c[i].text);
        json_decref(c[i].body);
    }
}

static void
test_method_names(void **state)
{
    AG_UNUSED(state);
    static const struct {
        enum ag_http_method m;
        const char *name;
    } cases[] = {
        { AG_HTTP_GET, "GET" },         { AG_HTTP_HEAD, "HEAD" },   { AG_HTTP_POST, "POST" },
        { AG_HTTP_PUT, "PUT" },         { AG_HTTP_PATCH, "PATCH" }, { AG_HTTP_DELETE, "DELETE" },
        { AG_HTTP_OPTIONS, "OPTIONS" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++)
        assert_string_equal(ag_http_method_name(cases[i].m), cases[i].name);
    assert_null(ag_http_method_name(AG_HTTP_OTHER));
    assert_null(ag_http_method_name((enum ag_http_method)99));
}

/* Entity tags: strong and weak comparison, "*", lists with spaces. */
static void
test_etags(void **state)
{
    AG_UNUSED(state);
    assert_true(ag_etag_list_matches(ag_str_from_cstr("\"7\""), 7, false));
    assert_false(ag_etag_list_matches(ag_str_from_cstr("\"7\""), 8, false));
    assert_true(ag_etag_list_matches(ag_str_from_cstr("\"1\", \"7\""), 7, false));
    assert_true(ag_etag_list_matches(ag_str_from_cstr(" * "), 3, false));
    assert_false(ag_etag_list_matches(ag_str_from_cstr("W/\"7\""), 7, false));
    assert_true(ag_etag_list_matches(ag_str_from_cstr("W/\"7\""), 7, true));
    assert_false(ag_etag_list_matches(ag_str_from_cstr("7"), 7, true));
    assert_false(ag_etag_list_matches(ag_str_from_cstr(""), 7, true));
    assert_false(ag_etag_list_matches(ag_str_from_cstr(",,"), 7, true));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_names),
        cmocka_unit_test(test_etags),
        cmocka_unit_test(test_helpers_over_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
