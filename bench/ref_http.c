/*
 * ref_http.c - reference server (a), the HTTP ceiling: libuv + llhttp on the gateway's stack,
 * keep-alive, answering every request (any method, any path) with one fixed, preformatted
 * JSON body of --body-bytes bytes (default 1200, the size of the gateway's "pending" answer)
 * and the gateway's response header set. No Redis, no parsing beyond HTTP framing.
 *
 *   bench_ref_http --port 18401 [--host 127.0.0.1] [--body-bytes 1200]
 *
 * SO_REUSEPORT (several may share a port); SIGTERM/SIGINT -> exit 0.
 */
#include "bench_util.h"
#include "bsrv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uv_buf_t g_response;

static void handler(bsrv_req_t *req, void *ud)
{
    (void)ud;
    bsrv_respond(req, &g_response, 1);
}

static int usage(void)
{
    fputs("usage: bench_ref_http --port PORT [--host HOST] [--body-bytes N]\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    long body_bytes = 1200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--body-bytes") == 0 && i + 1 < argc)
            body_bytes = atol(argv[++i]);
        else
            return usage();
    }
    if (port <= 0 || port > 65535 || body_bytes < 15 || body_bytes > (1L << 24))
        return usage();
    char *body = bench_json_body((size_t)body_bytes);
    size_t len = 0;
    char *resp = bench_http_200(body, strlen(body), &len);
    free(body);
    if (resp == NULL)
        return 1;
    g_response = uv_buf_init(resp, (unsigned)len);

    uv_loop_t *loop = uv_default_loop();
    bsrv_opts_t o = {.host = host, .port = port, .handler = handler};
    int rc = bsrv_listen(loop, &o);
    if (rc != 0) {
        fprintf(stderr, "ref_http: listen %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    bsrv_handle_signals(loop);
    fprintf(stderr, "ref_http: listening on %s:%d, %ld-byte body\n", host, port, body_bytes);
    uv_run(loop, UV_RUN_DEFAULT);
    fprintf(stderr, "ref_http: %llu requests answered\n", bsrv_answered());
    free(resp);
    return 0;
}
