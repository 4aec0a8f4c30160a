/*
 * test_lb.c - the gateway behind a load balancer: nginx (Debian's package) on loopback in front
 * of two gateway processes and one Redis (appendonly, appendfsync always), with the nginx
 * configuration shipped in deploy/nginx.conf (only its addresses, port and temp paths
 * rewritten: see the head of that file).
 *
 * Four client threads send mixed traffic through nginx: for each of their orders a create, an
 * update_status and a cancel, each with its own Idempotency-Key. Once a third of the requests
 * are acknowledged, one gateway is frozen (SIGSTOP) for 300 ms, so that requests nginx sent it
 * are in flight, and then killed with SIGKILL. A client retries a request that got 502,
 * 503, 504 or a connection error with the same Idempotency-Key, as the README tells partners to.
 *
 * Then:
 *   - clients only ever saw retriable errors during the switch: never a 4xx or a 500 for a
 *     valid request, and every request was acknowledged in the end;
 *   - no acknowledged saga is lost: every saga_id answered 200 is in Redis and ends terminal
 *     (the survivor claims the dead process's stream entries after saga.claim_idle_ms, 2 s
 *     here), creates and updates synced and cancels canceled;
 *   - no duplicate sagas: one saga per Idempotency-Key (the Redis saga records are exactly the
 *     acknowledged ones, each with a different key), and replays answered the same saga id;
 *   - nginx's own JSON access log parses, and shows it failed requests over to the survivor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "store_keys.h"
#include "stub_dest.h"

#define NGINX              "/usr/sbin/nginx"
#define ACME_KEY           "demo-acme-key"
#define N_THREADS          4
#define N_ORDERS           25 /* per thread */
#define N_OPS              (N_THREADS * N_ORDERS * 3)
#define OP_DEADLINE_MS     30000
#define FINISH_DEADLINE_MS 45000
#define PACE_MS            30 /* between a client's requests: the run spans a few seconds */

static harness_redis_t g_redis;
static bool g_redis_up;
static stub_dest_t *g_acme;
static stub_dest_t *g_swift;
static json_t *g_overrides;
static char g_root[4096];

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL), 1);
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static bool is_terminal(const char *st)
{
    return st && (strcmp(st, "synced") == 0 || strcmp(st, "canceled") == 0 ||
                  strcmp(st, "rejected") == 0 || strcmp(st, "error") == 0);
}

/* Replace every occurrence of from in *text by to; fails when there is none. */
static void replace_all(char **text, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    size_t count = 0;
    for (const char *p = *text; (p = strstr(p, from)) != NULL; p += fl)
        count++;
    if (count == 0)
        fail_msg("deploy/nginx.conf no longer contains '%s' (see the head of that file)", from);
    size_t len = strlen(*text);
    char *out = malloc(len + count * (tl > fl ? tl - fl : 0) + 1);
    char *o = out;
    const char *p = *text;
    for (const char *hit; (hit = strstr(p, from)) != NULL; p = hit + fl) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, to, tl);
        o += tl;
    }
    strcpy(o, p);
    free(*text);
    *text = out;
}

/* Run a shell command; exit status (-1 if abnormal), output in *out (caller frees). */
static int run_cmd(const char *cmd, char **out)
{
    char *full = harness_fmt("%s 2>&1", cmd);
    fflush(stdout);
    fflush(stderr);
    FILE *p = popen(full, "r");
    free(full);
    assert_non_null(p);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1024 + 1 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, p);
        n += got;
        if (got == 0)
            break;
    }
    buf[n] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---------------------------------------------------------------------------------------------
 * nginx as a child process
 * ------------------------------------------------------------------------------------------- */

static pid_t g_nginx;

static void nginx_cleanup(void)
{
    if (g_nginx > 0) {
        kill(g_nginx, SIGTERM); /* the master stops its workers */
        bool reaped = false;
        for (int i = 0; i < 500 && !reaped; i++) {
            reaped = waitpid(g_nginx, NULL, WNOHANG) != 0;
            if (!reaped)
                harness_sleep_ms(10);
        }
        if (!reaped) {
            kill(g_nginx, SIGKILL);
            waitpid(g_nginx, NULL, 0);
        }
        g_nginx = 0;
    }
}

/* Start nginx in the foreground; stdout (its access log) and stderr (its error log) to files.
 * If this test process dies, the master gets SIGTERM and takes its workers with it. */
static pid_t nginx_spawn(const char *prefix, const char *conf, const char *out_path,
                         const char *err_path)
{
    static bool hook;
    if (!hook) {
        atexit(nginx_cleanup);
        hook = true;
    }
    int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true(out >= 0 && err >= 0);
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(126);
        if (dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
            _exit(126);
        close_range(3, ~0u, 0);
        char *argv[] = {(char *)NGINX, (char *)"-p", (char *)prefix,        (char *)"-c",
                        (char *)conf,  (char *)"-g", (char *)"daemon off;", NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    close(out);
    close(err);
    return pid;
}

/* ---------------------------------------------------------------------------------------------
 * The clients
 * ------------------------------------------------------------------------------------------- */

typedef enum { OP_CREATE, OP_UPDATE, OP_CANCEL } op_kind_t;
static const char *const op_paths[] = {"/v1/order/create", "/v1/order/update_status",
                                       "/v1/order/cancel"};

typedef struct op {
    op_kind_t kind;
    char key[96];      /* Idempotency-Key */
    char saga_id[25];  /* from the 200 */
    char order_id[25]; /* create: from the 200 */
    int attempts;
    int retriable; /* 502/503/504 or connection errors seen */
    bool acked;
    bool replayed; /* the 200 had Idempotent-Replayed: true */
    long long acked_at;
    char bad[320]; /* a non-retriable answer, if any */
} op_t;

static op_t g_ops[N_OPS];
static atomic_int g_acked;
static atomic_int g_retriable;
static int g_lb_port;

typedef struct hdrs {
    bool replayed;
} hdrs_t;

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    hdrs_t *h = data;
    size_t len = size * n;
    static const char name[] = "idempotent-replayed:";
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        h->replayed = false;
    if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0 &&
        strstr(p + sizeof name - 1, "true") != NULL)
        h->replayed = true;
    return len;
}

typedef struct sink {
    char *data;
    size_t len, cap;
} sink_t;

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    sink_t *s = data;
    size_t len = size * n;
    if (s->len + len + 1 > s->cap) {
        s->cap = (s->len + len + 1) * 2;
        s->data = realloc(s->data, s->cap);
    }
    memcpy(s->data + s->len, p, len);
    s->len += len;
    s->data[s->len] = '\0';
    return len;
}

/* Send op through nginx until it is acknowledged (200), a non-retriable answer comes, or the
 * deadline passes. The same Idempotency-Key every time. */
static bool run_op(CURL *curl, op_t *op, const char *body)
{
    char ih[160];
    snprintf(ih, sizeof ih, "Idempotency-Key: %s", op->key);
    struct curl_slist *list = NULL;
    list = curl_slist_append(list, "Content-Type: application/json");
    list = curl_slist_append(list, "X-API-Key: " ACME_KEY);
    list = curl_slist_append(list, "X-Dest-Tenant-Name: swift-haul");
    list = curl_slist_append(list, ih);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_lb_port, op_paths[op->kind]);
    long long end = harness_now_ms() + OP_DEADLINE_MS;
    bool ok = false;
    while (harness_now_ms() < end) {
        op->attempts++;
        sink_t s = {0};
        hdrs_t h = {false};
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &h);
        CURLcode cc = curl_easy_perform(curl);
        long code = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        if (cc != CURLE_OK || code == 502 || code == 503 || code == 504) {
            op->retriable++;
            atomic_fetch_add(&g_retriable, 1);
            free(s.data);
            harness_sleep_ms(100);
            continue;
        }
        json_t *j = s.data ? json_loads(s.data, 0, NULL) : NULL;
        const char *sid = json_string_value(json_object_get(json_object_get(j, "log"), "saga_id"));
        const char *oid = json_string_value(json_object_get(j, "order_id"));
        if (code == 200 && sid != NULL && (op->kind != OP_CREATE || oid != NULL)) {
            snprintf(op->saga_id, sizeof op->saga_id, "%s", sid);
            if (oid)
                snprintf(op->order_id, sizeof op->order_id, "%s", oid);
            op->replayed = h.replayed;
            op->acked = true;
            op->acked_at = harness_now_ms();
            atomic_fetch_add(&g_acked, 1);
            ok = true;
        } else {
            snprintf(op->bad, sizeof op->bad, "%ld %s", code, s.data ? s.data : "");
        }
        json_decref(j);
        free(s.data);
        break;
    }
    if (!ok && op->bad[0] == '\0')
        snprintf(op->bad, sizeof op->bad, "no 200 within %d ms (%d attempts)", OP_DEADLINE_MS,
                 op->attempts);
    curl_slist_free_all(list);
    return ok;
}

static void *client(void *arg)
{
    int t = (int)(intptr_t)arg;
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return NULL;
    for (int i = 0; i < N_ORDERS; i++) {
        op_t *ops = &g_ops[(t * N_ORDERS + i) * 3];
        char num[64];
        snprintf(num, sizeof num, "LB-%d-%d-%02d", (int)getpid(), t, i);
        for (int k = 0; k < 3; k++) {
            ops[k].kind = (op_kind_t)k;
            snprintf(ops[k].key, sizeof ops[k].key, "lb-%d-%d-%02d-%c", (int)getpid(), t, i,
                     "cux"[k]);
        }
        char *body =
            harness_fmt("{\"order_number\":\"%s\",\"requested_delivery\":\"2026-05-12T08:00:"
                        "00Z\",\"lines\":[{\"product\":{\"source_id\":\"ULSD\"},\"terminal\":"
                        "{\"source_id\":\"HOU-T1\"},\"site\":{\"source_id\":\"ATX-S12\"},"
                        "\"quantity\":%d,\"uom\":\"gal\"}]}",
                        num, 1000 + i);
        bool ok = run_op(curl, &ops[0], body);
        free(body);
        if (!ok)
            continue;
        harness_sleep_ms(PACE_MS);
        body = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"progress_status\":\"assigned\","
                           "\"location\":{\"source_id\":\"HOU-T1\"},\"assigned_to\":\"%s\"}",
                           ops[0].order_id, num);
        run_op(curl, &ops[1], body);
        free(body);
        harness_sleep_ms(PACE_MS);
        body = harness_fmt("{\"order\":{\"order_id\":\"%s\"},\"reason_code\":\"customer_request\"}",
                           ops[0].order_id);
        run_op(curl, &ops[2], body);
        free(body);
        harness_sleep_ms(PACE_MS);
    }
    curl_easy_cleanup(curl);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Redis checks
 * ------------------------------------------------------------------------------------------- */

/* Every saga record in Redis: its id -> its idempotency_key hash (SCAN, then HGET). */
static json_t *redis_sagas(redisContext *c)
{
    json_t *out = json_object();
    static const char prefix[] = "cr:" STORE_TAG ":saga:";
    const size_t plen = sizeof prefix - 1;
    char cursor[32] = "0";
    do {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, prefix);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        const redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *k = keys->element[i]->str;
            if (keys->element[i]->len != plen + 24)
                continue; /* :hist and the like */
            redisReply *h = redisCommand(c, "HGET %s idempotency_key", k);
            assert_non_null(h);
            json_object_set_new(out, k + plen,
                                json_string(h->type == REDIS_REPLY_STRING ? h->str : ""));
            freeReplyObject(h);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    return out;
}

static void saga_field(redisContext *c, const char *sid, const char *field, char *out, size_t size)
{
    redisReply *rep = redisCommand(c, "HGET " STORE_KEY_SAGA_FMT " %s", sid, field);
    assert_non_null(rep);
    snprintf(out, size, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
}

/* ---------------------------------------------------------------------------------------------
 * The test
 * ------------------------------------------------------------------------------------------- */

static int count_substr(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_failover_through_nginx(void **state)
{
    (void)state;
    if (access(NGINX, X_OK) != 0)
        fail_msg("nginx is missing: apt-get install -y --no-install-recommends nginx");

    harness_gw_t a, b;
    if (harness_gw_start(&a, "gateway.json", g_redis.port, g_overrides) != 0 ||
        harness_gw_start(&b, "gateway.json", g_redis.port, g_overrides) != 0)
        fail_msg("gateways did not start");
    assert_true(harness_gw_wait_ready(&a, 200, 10000));
    assert_true(harness_gw_wait_ready(&b, 200, 10000));

    /* nginx with deploy/nginx.conf, rewritten to loopback. */
    char dir[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cr-lb-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    chmod(dir, 0755); /* workers run as an unprivileged user when we are root */
    char *src_path = harness_fmt("%s/deploy/nginx.conf", g_root);
    char *conf_path = harness_fmt("%s/nginx.conf", dir);
    char *out_path = harness_fmt("%s/nginx.out", dir);
    char *err_path = harness_fmt("%s/nginx.err", dir);
    pid_t pid = 0;
    for (int attempt = 0; attempt < 3 && pid == 0; attempt++) {
        char *conf = harness_read_file(src_path, NULL);
        assert_non_null(conf);
        g_lb_port = harness_free_port();
        char *to = harness_fmt("server 127.0.0.1:%d", a.port);
        replace_all(&conf, "server gateway1:8080", to);
        free(to);
        to = harness_fmt("server 127.0.0.1:%d", b.port);
        replace_all(&conf, "server gateway2:8080", to);
        free(to);
        to = harness_fmt("listen 127.0.0.1:%d;", g_lb_port);
        replace_all(&conf, "listen 8080;", to);
        free(to);
        to = harness_fmt("%s/", dir);
        replace_all(&conf, "/tmp/", to);
        free(to);
        FILE *f = fopen(conf_path, "w");
        assert_non_null(f);
        fputs(conf, f);
        fclose(f);
        free(conf);
        if (attempt == 0) {
            char *cmd = harness_fmt("%s -t -p '%s/' -c '%s'", NGINX, dir, conf_path);
            char *out = NULL;
            int rc = run_cmd(cmd, &out);
            if (rc != 0)
                fail_msg("nginx -t refuses the rewritten deploy/nginx.conf:\n%s", out);
            free(out);
            free(cmd);
        }
        char *prefix = harness_fmt("%s/", dir);
        pid = nginx_spawn(prefix, conf_path, out_path, err_path);
        free(prefix);
        g_nginx = pid;
        long long end = harness_now_ms() + 10000;
        bool up = false;
        while (!up && harness_now_ms() < end) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                pid = g_nginx = 0; /* the port was taken between probe and bind: again */
                break;
            }
            harness_resp_t r;
            if (harness_http(g_lb_port, "GET", "/healthz", NULL, NULL, 0, &r) == 0 &&
                r.status == 200)
                up = true;
            harness_resp_free(&r);
            if (!up)
                harness_sleep_ms(50);
        }
        if (pid != 0 && !up)
            fail_msg("nginx does not answer on port %d", g_lb_port);
    }
    if (pid == 0) {
        char *log = harness_read_file(err_path, NULL);
        fail_msg("nginx did not start:\n%s", log ? log : "");
    }
    /* /metrics stays off the load balancer. */
    harness_resp_t r;
    assert_int_equal(harness_http(g_lb_port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    harness_resp_free(&r);

    /* A POST without Idempotency-Key goes through the no-retry location and works. */
    {
        const char *h[] = {"Content-Type: application/json", "X-API-Key: " ACME_KEY,
                           "X-Dest-Tenant-Name: swift-haul", NULL};
        static const char body[] = "{\"order\":{\"order_number\":\"LB-NO-KEY\"},"
                                   "\"reason_code\":\"customer_request\"}";
        assert_int_equal(
            harness_http(g_lb_port, "POST", "/v1/order/cancel", h, body, sizeof body - 1, &r), 0);
        assert_int_equal(r.status, 200);
        harness_resp_free(&r);
    }

    /* Mixed traffic from four clients; kill gateway a a third of the way in. */
    memset(g_ops, 0, sizeof g_ops);
    atomic_store(&g_acked, 0);
    atomic_store(&g_retriable, 0);
    pthread_t threads[N_THREADS];
    long long t_start = harness_now_ms();
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, client, (void *)(intptr_t)t), 0);
    long long end = harness_now_ms() + 60000;
    while (atomic_load(&g_acked) < N_OPS / 3 && harness_now_ms() < end)
        harness_sleep_ms(1);
    int acked_at_kill = atomic_load(&g_acked);
    long long t_kill = harness_now_ms();
    char a_log[512];
    snprintf(a_log, sizeof a_log, "%s", a.log_path);
    /* Freeze it first for a moment, so requests nginx has already sent to it are in flight
     * when it dies (a hung process killed by its supervisor): nginx must re-send those to the
     * survivor with the same Idempotency-Key. */
    kill(a.pid, SIGSTOP);
    harness_sleep_ms(300);
    harness_gw_kill(&a);
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(threads[t], NULL);
    long long t_end = harness_now_ms();

    /* What the clients saw. */
    int acked = 0, retriable = 0, replayed = 0, after_kill = 0, ops_with_errors = 0;
    for (int i = 0; i < N_OPS; i++) {
        op_t *op = &g_ops[i];
        if (op->bad[0] != '\0')
            fail_msg("%s with Idempotency-Key %s: %s (after %d attempts)", op_paths[op->kind],
                     op->key, op->bad, op->attempts);
        assert_true(op->acked);
        acked++;
        retriable += op->retriable;
        ops_with_errors += op->retriable > 0;
        replayed += op->replayed;
        after_kill += op->acked_at > t_kill;
    }
    print_message("%d requests acknowledged in %lld ms; gateway killed after %d; %d acknowledged "
                  "after the kill; clients saw %d retriable errors on %d requests; %d answers "
                  "were idempotent replays\n",
                  acked, t_end - t_start, acked_at_kill, after_kill, retriable, ops_with_errors,
                  replayed);
    assert_int_equal(acked, N_OPS);
    assert_true(after_kill > 0);

    /* Both gateways served before the kill. */
    char *log = harness_read_file(a_log, NULL);
    assert_non_null(log);
    int a_served = count_substr(log, "\"path\":\"/v1/order/");
    free(log);
    print_message("the killed gateway had answered %d mutations\n", a_served);
    assert_true(a_served > 0);

    /* No saga lost, none duplicated. */
    redisContext *c = harness_redis_connect(&g_redis);
    assert_non_null(c);
    json_t *sagas = redis_sagas(c);
    json_t *by_key = json_object();
    for (int i = 0; i < N_OPS; i++) {
        op_t *op = &g_ops[i];
        const char *idem = json_string_value(json_object_get(sagas, op->saga_id));
        if (idem == NULL)
            fail_msg("saga %s (acknowledged for %s) is not in Redis", op->saga_id, op->key);
        char want[65];
        sha256_hex(op->key, want);
        assert_string_equal(idem, want);
        if (json_object_get(by_key, op->key))
            fail_msg("Idempotency-Key %s answered twice", op->key);
        json_object_set_new(by_key, op->key, json_string(op->saga_id));
    }
    /* Exactly the acknowledged sagas, one per key: no second saga from a retried request. */
    json_t *seen = json_object();
    const char *sid;
    json_t *v;
    size_t keyed = 0, unkeyed = 0;
    json_object_foreach(sagas, sid, v)
    {
        const char *idem = json_string_value(v);
        if (idem[0] == '\0') {
            unkeyed++; /* the POST without Idempotency-Key above */
            continue;
        }
        keyed++;
        if (json_object_get(seen, idem))
            fail_msg("two sagas (%s and %s) for one Idempotency-Key", sid,
                     json_string_value(json_object_get(seen, idem)));
        json_object_set_new(seen, idem, json_string(sid));
    }
    if (keyed != (size_t)N_OPS || unkeyed != 1)
        fail_msg("%zu sagas with an Idempotency-Key in Redis for %d acknowledged requests (and %zu "
                 "without, want 1)",
                 keyed, N_OPS, unkeyed);
    json_decref(seen);
    json_decref(by_key);
    json_decref(sagas);

    /* Every acknowledged saga ends, the dead process's ones claimed by the survivor. */
    end = harness_now_ms() + FINISH_DEADLINE_MS;
    long long t_wait = harness_now_ms();
    int open = 0;
    char st[32];
    do {
        open = 0;
        for (int i = 0; i < N_OPS; i++) {
            saga_field(c, g_ops[i].saga_id, "status", st, sizeof st);
            open += !is_terminal(st);
        }
        if (open > 0)
            harness_sleep_ms(100);
    } while (open > 0 && harness_now_ms() < end);
    if (open > 0) {
        for (int i = 0; i < N_OPS; i++) {
            saga_field(c, g_ops[i].saga_id, "status", st, sizeof st);
            if (!is_terminal(st))
                print_error("saga %s (%s) still %s\n", g_ops[i].saga_id, g_ops[i].key, st);
        }
        fail_msg("%d acknowledged sagas not terminal %d ms after the run", open,
                 FINISH_DEADLINE_MS);
    }
    print_message("all %d sagas terminal %lld ms after the clients finished\n", N_OPS,
                  harness_now_ms() - t_wait);
    static const char *const want_status[] = {"synced", "synced", "canceled"};
    for (int i = 0; i < N_OPS; i++) {
        saga_field(c, g_ops[i].saga_id, "status", st, sizeof st);
        if (strcmp(st, want_status[g_ops[i].kind]) != 0) {
            char msg[256];
            saga_field(c, g_ops[i].saga_id, "message", msg, sizeof msg);
            fail_msg("saga %s (%s) ended %s (%s), want %s", g_ops[i].saga_id, g_ops[i].key, st, msg,
                     want_status[g_ops[i].kind]);
        }
    }
    redisFree(c);

    /* nginx: its access log is JSON, and it failed requests over to the survivor itself. */
    nginx_cleanup();
    size_t len = 0;
    log = harness_read_file(out_path, &len);
    assert_non_null(log);
    int lines = 0, failed_over = 0;
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!json_is_object(o))
            fail_msg("nginx access line is not JSON (%s): %s", err.text, line);
        const char *up = json_string_value(json_object_get(o, "upstream"));
        assert_non_null(json_string_value(json_object_get(o, "request_id")));
        if (up && strchr(up, ','))
            failed_over++;
        lines++;
        json_decref(o);
    }
    free(log);
    char *errlog = harness_read_file(err_path, NULL);
    int refused = errlog ? count_substr(errlog, "while connecting to upstream") : 0;
    int sent = errlog ? count_substr(errlog, "while reading response header") : 0;
    free(errlog);
    print_message("nginx: %d access lines, %d requests passed to a second gateway; upstream "
                  "errors: %d before the request was sent, %d after\n",
                  lines, failed_over, refused, sent);
    assert_true(lines >= N_OPS);
    assert_true(failed_over > 0);
    /* Mutations the frozen gateway had received were re-sent (non_idempotent, made safe by
     * Idempotency-Key), and the checks above show they did not make a second saga. */
    assert_true(sent > 0);

    assert_int_equal(harness_gw_stop(&b), 0);
    /* a's temp dir (its config and log) is kept by harness_gw_kill; remove it. */
    char adir[512];
    snprintf(adir, sizeof adir, "%s", a_log);
    char *slash = strrchr(adir, '/');
    if (slash) {
        *slash = '\0';
        rm_tree(adir);
    }
    rm_tree(dir);
    free(src_path);
    free(conf_path);
    free(out_path);
    free(err_path);
}

/* ---------------------------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------------------------- */

static json_t *make_overrides(void)
{
    char acme[128], swift[128];
    stub_dest_url(g_acme, acme, sizeof acme);
    stub_dest_url(g_swift, swift, sizeof swift);
    json_t *tenants = harness_fixture_tenants_at(
        (const char *[]){"acme-supply", acme, "swift-haul", swift, NULL});
    if (tenants == NULL)
        return NULL;
    /* The gateway keeps idle connections longer than nginx (keepalive_timeout 50s in
     * deploy/nginx.conf), as deploy/nginx.conf asks. */
    return json_pack("{s:o, s:{s:i, s:i, s:i, s:i, s:i}, s:{s:i}}", "tenants", tenants, "saga",
                     "max_attempts", 5, "retry_base_ms", 50, "retry_max_ms", 200, "claim_idle_ms",
                     2000, "drain_timeout_ms", 5000, "limits", "idle_timeout_ms", 60000);
}

static int group_setup(void **state)
{
    (void)state;
    const char *fixtures = getenv("CR_FIXTURES");
    char joined[4096];
    snprintf(joined, sizeof joined, "%s/../..", fixtures ? fixtures : ".");
    if (realpath(joined, g_root) == NULL)
        return -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    setenv("ACME_WEBHOOK_SECRET", "lb-acme-secret", 1);
    setenv("SWIFT_WEBHOOK_SECRET", "lb-swift-secret", 1);
    g_acme = stub_dest_start();
    g_swift = stub_dest_start();
    if (g_acme == NULL || g_swift == NULL)
        return -1;
    /* Deliveries take a little while, so the kill finds saga steps in flight. */
    stub_reply_t slow = {.status = 200, .delay_ms = 20};
    stub_dest_set_default(g_swift, &slow);
    g_overrides = make_overrides();
    if (g_overrides == NULL)
        return -1;
    if (harness_redis_start(&g_redis, true) != 0)
        return -1;
    g_redis_up = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    nginx_cleanup();
    if (g_redis_up)
        harness_redis_stop(&g_redis);
    stub_dest_stop(g_acme);
    stub_dest_stop(g_swift);
    json_decref(g_overrides);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_through_nginx),
    };
    return cmocka_run_group_tests_name("lb", tests, group_setup, group_teardown) != 0;
}
