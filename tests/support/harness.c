/*
 * harness.c - integration-test support (see harness.h): child processes, free ports, temp dirs,
 * raw-socket and libcurl clients, hiredis checks.
 *
 * Owns: every child it starts (a private registry, emptied by an atexit hook that SIGKILLs and
 * reaps whatever a failed test left running) and the temp dirs of Redis instances. Blocking
 * calls are fine here; every wait has a deadline and polls in a few milliseconds at a time, so
 * no test depends on a fixed sleep.
 * Must not: be linked into the gateway, or leave a process behind when a test aborts.
 */
#include "harness.h"

#include "store_keys.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS      5
#define MAX_CHILDREN 64
#define MAX_DIRS     64

/* ---------------------------------------------------------------- time */

long long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

char *harness_fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    if (n < 0)
        abort();
    return s;
}

/* ---------------------------------------------------------------- children and temp dirs */

/*
 * Every child goes into this registry when it starts and leaves it when it is reaped. The atexit
 * hook kills the rest, so a failed assertion (which longjmps past the test's own stop calls)
 * never leaves a redis-server or gateway behind. Redis dirs are removed at exit too: an
 * appendonly instance keeps its dir across stop for harness_redis_restart.
 */
static pid_t children[MAX_CHILDREN];
static char *exit_dirs[MAX_DIRS];
static bool hook_installed;

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
    if (dir != NULL && dir[0] != '\0')
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void at_exit_cleanup(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
    for (int i = 0; i < MAX_DIRS; i++) {
        if (exit_dirs[i] != NULL) {
            rm_tree(exit_dirs[i]);
            free(exit_dirs[i]);
            exit_dirs[i] = NULL;
        }
    }
}

static void install_hook(void)
{
    if (!hook_installed) {
        hook_installed = true;
        atexit(at_exit_cleanup);
    }
}

static void child_add(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    }
}

static void child_forget(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] == pid)
            children[i] = 0;
    }
}

static void exit_dir_add(const char *dir)
{
    for (int i = 0; i < MAX_DIRS; i++) {
        if (exit_dirs[i] != NULL && strcmp(exit_dirs[i], dir) == 0)
            return;
    }
    for (int i = 0; i < MAX_DIRS; i++) {
        if (exit_dirs[i] == NULL) {
            exit_dirs[i] = strdup(dir);
            return;
        }
    }
}

static void exit_dir_forget(const char *dir)
{
    for (int i = 0; i < MAX_DIRS; i++) {
        if (exit_dirs[i] != NULL && strcmp(exit_dirs[i], dir) == 0) {
            free(exit_dirs[i]);
            exit_dirs[i] = NULL;
        }
    }
}

/* A new private directory under $TMPDIR (or /tmp); false on failure. */
static bool make_temp_dir(const char *tag, char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    int n = snprintf(out, size, "%s/cr-%s-XXXXXX", tmp, tag);
    if (n < 0 || (size_t)n >= size)
        return false;
    if (mkdtemp(out) == NULL) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", out, strerror(errno));
        out[0] = '\0';
        return false;
    }
    return true;
}

/*
 * fork + execv with stdout and stderr appended to log_path. The child dies with us
 * (PR_SET_PDEATHSIG) and inherits none of our descriptors beyond 0-2, so a test's open sockets
 * never stay alive in a gateway or Redis process.
 */
static pid_t spawn(char *const argv[], const char *log_path)
{
    install_hook();
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "harness: open %s: %s\n", log_path, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(126);
        close_range(3, ~0u, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            close(devnull);
        }
        /* The config file is the only source of the listen address and Redis URL. */
        unsetenv("CROSSROADS_LISTEN");
        unsetenv("CROSSROADS_REDIS_URL");
        unsetenv("CROSSROADS_CONFIG");
        execvp(argv[0], argv);
        fprintf(stderr, "harness: execv %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    child_add(pid);
    return pid;
}

/* Reap pid if it has exited (status in *status); true when reaped. */
static bool child_reaped(pid_t pid, int *status)
{
    int st = 0;
    pid_t rc = waitpid(pid, &st, WNOHANG);
    if (rc == pid) {
        child_forget(pid);
        if (status)
            *status = st;
        return true;
    }
    if (rc < 0 && errno == ECHILD) {
        child_forget(pid);
        if (status)
            *status = 0;
        return true;
    }
    return false;
}

/* Wait up to deadline_ms for pid to exit; true when it did (status in *status). */
static bool child_wait(pid_t pid, int deadline_ms, int *status)
{
    long long end = harness_now_ms() + deadline_ms;
    for (;;) {
        if (child_reaped(pid, status))
            return true;
        if (harness_now_ms() >= end)
            return false;
        harness_sleep_ms(POLL_MS);
    }
}

static void child_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    child_forget(pid);
}

char *harness_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *data = malloc(cap);
    if (data == NULL)
        abort();
    for (;;) {
        if (n + 1024 + 1 > cap) {
            cap *= 2;
            data = realloc(data, cap);
            if (data == NULL)
                abort();
        }
        size_t got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    data[n] = '\0';
    if (len)
        *len = n;
    return data;
}

/* Print a child's log to stderr, from near `from` (or the last 16 KiB when from is NULL). */
static void print_log(const char *what, const char *path, const char *needle)
{
    size_t len = 0;
    char *log = harness_read_file(path, &len);
    if (log == NULL) {
        fprintf(stderr, "harness: %s log %s: unreadable\n", what, path);
        return;
    }
    const char *from = needle ? strstr(log, needle) : NULL;
    size_t off = 0;
    if (from != NULL)
        off = (size_t)(from - log) > 512 ? (size_t)(from - log) - 512 : 0;
    else if (len > 16384)
        off = len - 16384;
    fprintf(stderr, "---- %s log %s%s ----\n%s\n---- end of %s log ----\n", what, path,
            off ? " (tail)" : "", log + off, what);
    free(log);
}

/* ---------------------------------------------------------------- ports */

int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t alen = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---------------------------------------------------------------- redis */

static pid_t redis_spawn(const harness_redis_t *r)
{
    const char *bin = getenv("CR_REDIS_SERVER");
    if (bin == NULL || bin[0] == '\0')
        bin = "/usr/bin/redis-server";
    char port[16], log_path[300];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log_path, sizeof log_path, "%s/redis.log", r->dir);
    char *argv[24];
    int i = 0;
    argv[i++] = (char *)bin;
    argv[i++] = (char *)"--port";
    argv[i++] = port;
    argv[i++] = (char *)"--bind";
    argv[i++] = (char *)"127.0.0.1";
    argv[i++] = (char *)"--save";
    argv[i++] = (char *)"";
    argv[i++] = (char *)"--appendonly";
    argv[i++] = (char *)(r->appendonly ? "yes" : "no");
    if (r->appendonly) {
        argv[i++] = (char *)"--appendfsync";
        argv[i++] = (char *)"always";
    }
    argv[i++] = (char *)"--dir";
    argv[i++] = (char *)r->dir;
    argv[i++] = (char *)"--daemonize";
    argv[i++] = (char *)"no";
    argv[i] = NULL;
    return spawn(argv, log_path);
}

/* Wait until the instance answers PING with PONG (not LOADING); 0 or -1. */
static int redis_wait_pong(harness_redis_t *r, int deadline_ms)
{
    long long end = harness_now_ms() + deadline_ms;
    while (harness_now_ms() < end) {
        if (child_reaped(r->pid, NULL)) {
            r->pid = 0;
            return -1;
        }
        redisContext *c = harness_redis_connect(r);
        if (c != NULL) {
            redisReply *rep = redisCommand(c, "PING");
            bool ok =
                rep != NULL && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 0;
        }
        harness_sleep_ms(POLL_MS * 2);
    }
    return -1;
}

static int redis_launch(harness_redis_t *r)
{
    char log_path[300];
    snprintf(log_path, sizeof log_path, "%s/redis.log", r->dir);
    r->pid = redis_spawn(r);
    if (r->pid <= 0) {
        r->pid = 0;
        return -1;
    }
    if (redis_wait_pong(r, 10000) != 0) {
        fprintf(stderr, "harness: redis-server on port %d did not answer PING\n", r->port);
        print_log("redis", log_path, NULL);
        if (r->pid > 0)
            child_kill(r->pid);
        r->pid = 0;
        return -1;
    }
    return 0;
}

int harness_redis_start(harness_redis_t *r, bool appendonly)
{
    memset(r, 0, sizeof *r);
    r->appendonly = appendonly;
    if (!make_temp_dir("redis", r->dir, sizeof r->dir))
        return -1;
    exit_dir_add(r->dir);
    /* A free port can be taken between our probe and Redis's bind: try a few. */
    for (int attempt = 0; attempt < 3; attempt++) {
        r->port = harness_free_port();
        if (r->port > 0 && redis_launch(r) == 0)
            return 0;
    }
    return -1;
}

int harness_redis_restart(harness_redis_t *r)
{
    if (r->pid > 0)
        harness_redis_stop(r);
    if (mkdir(r->dir, 0700) != 0 && errno != EEXIST)
        return -1;
    exit_dir_add(r->dir);
    return redis_launch(r);
}

void harness_redis_stop(harness_redis_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        if (!child_wait(r->pid, 10000, NULL))
            child_kill(r->pid);
        r->pid = 0;
    }
    if (!r->appendonly && r->dir[0] != '\0') {
        rm_tree(r->dir);
        exit_dir_forget(r->dir);
    }
}

void harness_redis_kill(harness_redis_t *r)
{
    if (r->pid > 0) {
        child_kill(r->pid);
        r->pid = 0;
    }
}

redisContext *harness_redis_connect(const harness_redis_t *r)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (c == NULL)
        return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    struct timeval cmd = {5, 0};
    redisSetTimeout(c, cmd);
    return c;
}

long long harness_stream_len(const harness_redis_t *r)
{
    redisContext *c = harness_redis_connect(r);
    if (c == NULL)
        return -1;
    redisReply *rep = redisCommand(c, "XLEN %s", STORE_KEY_STREAM);
    long long n = -1;
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
        n = rep->integer;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return n;
}

long long harness_saga_count(const harness_redis_t *r)
{
    redisContext *c = harness_redis_connect(r);
    if (c == NULL)
        return -1;
    static const char prefix[] = "cr:" STORE_TAG ":saga:";
    const size_t plen = sizeof prefix - 1;
    char cursor[32] = "0";
    long long n = 0;
    do {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, prefix);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        const redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *k = keys->element[i]->str;
            size_t kl = keys->element[i]->len;
            /* Only the saga hash itself: its id is 24 hex digits, nothing after. */
            bool saga = kl == plen + 24;
            for (size_t j = plen; saga && j < kl; j++)
                saga = (k[j] >= '0' && k[j] <= '9') || (k[j] >= 'a' && k[j] <= 'f');
            n += saga;
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
    return n;
}

/* ---------------------------------------------------------------- gateway */

/* GET path on a fresh connection; the status, or 0 when there is no answer within 1 s. */
static int raw_connect(int port, bool quiet);

static int probe_status(int port, const char *path)
{
    int fd = raw_connect(port, true);
    if (fd < 0)
        return 0;
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    int status = 0;
    if (harness_raw_send(fd, req, (size_t)n, 0) == 0) {
        size_t len;
        bool closed;
        char *raw = harness_raw_recv_n(fd, 1, 1000, &len, &closed);
        harness_resp_t resp;
        if (raw != NULL && harness_raw_parse(raw, len, 0, &resp) == 0) {
            status = resp.status;
            harness_resp_free(&resp);
        }
        free(raw);
    }
    close(fd);
    return status;
}

/* The fixture with listen, redis.url and the overrides applied, written to g->config_path. */
static int gw_write_config(harness_gw_t *g, const char *fixture_name, int redis_port,
                           const json_t *overrides)
{
    const char *fixtures = getenv("CR_FIXTURES");
    if (fixtures == NULL || fixtures[0] == '\0') {
        fprintf(stderr, "harness: CR_FIXTURES is not set\n");
        return -1;
    }
    char src[512];
    snprintf(src, sizeof src, "%s/configs/%s", fixtures, fixture_name);
    json_error_t jerr;
    json_t *cfg = json_load_file(src, JSON_REJECT_DUPLICATES, &jerr);
    if (cfg == NULL) {
        fprintf(stderr, "harness: %s:%d: %s\n", src, jerr.line, jerr.text);
        return -1;
    }
    json_object_set_new(cfg, "listen",
                        json_pack("{s:s, s:i}", "host", "127.0.0.1", "port", g->port));
    json_t *redis = json_object_get(cfg, "redis");
    if (!json_is_object(redis)) {
        redis = json_object();
        json_object_set_new(cfg, "redis", redis);
    }
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", redis_port);
    json_object_set_new(redis, "url", json_string(url));
    if (overrides != NULL) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)overrides, key, val)
        {
            json_t *cur = json_object_get(cfg, key);
            if (json_is_object(cur) && json_is_object(val))
                json_object_update(cur, val);
            else
                json_object_set(cfg, key, val);
        }
    }
    /* An override may move the listener; follow it. */
    json_t *port = json_object_get(json_object_get(cfg, "listen"), "port");
    if (json_is_integer(port))
        g->port = (int)json_integer_value(port);
    int rc = json_dump_file(cfg, g->config_path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(cfg);
    if (rc != 0)
        fprintf(stderr, "harness: cannot write %s\n", g->config_path);
    return rc == 0 ? 0 : -1;
}

/*
 * CR_GW_WRAPPER (e.g. "valgrind --leak-check=full --log-file=/tmp/vg.%p"): words, split at
 * spaces, run before the gateway's command, which becomes the wrapper's arguments (execvp looks
 * the first word up in PATH). Unset or empty: the command as is. Same pid either way.
 */
#define GW_WRAP_MAX 32
static void gw_wrap(char *const cmd[], char **argv, char *words, size_t size)
{
    const char *w = getenv("CR_GW_WRAPPER");
    size_t n = 0;
    snprintf(words, size, "%s", w ? w : "");
    for (char *save = NULL, *t = strtok_r(words, " ", &save); t && n < GW_WRAP_MAX;
         t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    for (size_t i = 0; cmd[i] != NULL; i++)
        argv[n++] = cmd[i];
    argv[n] = NULL;
}

int harness_gw_start(harness_gw_t *g, const char *fixture_name, int redis_port,
                     const json_t *overrides)
{
    memset(g, 0, sizeof *g);
    const char *env_bin = getenv("CR_BIN");
    char bin[PATH_MAX];
    if (env_bin == NULL || env_bin[0] == '\0') {
        fprintf(stderr, "harness: CR_BIN is not set\n");
        return -1;
    }
    if (realpath(env_bin, bin) == NULL) {
        fprintf(stderr, "harness: CR_BIN %s: %s\n", env_bin, strerror(errno));
        return -1;
    }
    char dir[256];
    if (!make_temp_dir("gw", dir, sizeof dir))
        return -1;
    snprintf(g->config_path, sizeof g->config_path, "%s/config.json", dir);
    snprintf(g->log_path, sizeof g->log_path, "%s/gateway.log", dir);
    /*
     * Run the binary through a link with a name of its own: on a shared machine someone's
     * "pkill crossroads" (say, restarting a demo) would otherwise drain our gateway mid-test.
     * Same executable, so sanitizer reports and exit codes are unchanged.
     */
    char link[300];
    snprintf(link, sizeof link, "%s/cr-gw", dir);
    if (symlink(bin, link) != 0) {
        fprintf(stderr, "harness: symlink %s: %s\n", link, strerror(errno));
        return -1;
    }

    for (int attempt = 0; attempt < 3; attempt++) {
        g->port = harness_free_port();
        if (g->port <= 0 || gw_write_config(g, fixture_name, redis_port, overrides) != 0)
            return -1;
        char *cmd[] = {link, (char *)"serve", (char *)"--config", g->config_path, NULL};
        char *argv[GW_WRAP_MAX + 5];
        char words[1024];
        gw_wrap(cmd, argv, words, sizeof words);
        unlink(g->log_path); /* each attempt's log on its own */
        g->pid = spawn(argv, g->log_path);
        if (g->pid <= 0) {
            g->pid = 0;
            return -1;
        }
        long long end = harness_now_ms() + 10000;
        int status = 0;
        bool exited = false;
        while (harness_now_ms() < end) {
            if (child_reaped(g->pid, &status)) {
                exited = true;
                break;
            }
            if (probe_status(g->port, "/healthz") == 200)
                return 0;
            harness_sleep_ms(POLL_MS * 2);
        }
        if (!exited) {
            fprintf(stderr, "harness: gateway on port %d did not answer /healthz in 10 s\n",
                    g->port);
            child_kill(g->pid);
            g->pid = 0;
            print_log("gateway", g->log_path, NULL);
            return -1;
        }
        g->pid = 0;
        size_t len = 0;
        char *log = harness_read_file(g->log_path, &len);
        bool port_taken = log != NULL && strstr(log, "cannot listen") != NULL;
        free(log);
        if (!port_taken) {
            fprintf(stderr, "harness: gateway exited during start-up (%s %d)\n",
                    WIFSIGNALED(status) ? "signal" : "status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            print_log("gateway", g->log_path, NULL);
            return -1;
        }
    }
    print_log("gateway", g->log_path, NULL);
    return -1;
}

static const char *const sanitizer_marks[] = {
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
};

int harness_gw_stop(harness_gw_t *g)
{
    if (g->pid <= 0)
        return -1;
    int rc = -1;
    int status = 0;
    if (child_reaped(g->pid, &status)) {
        /* It went before we asked: a crash, or a signal from elsewhere. Never a clean stop. */
        fprintf(stderr, "harness: the gateway had already exited before harness_gw_stop (%s %d)\n",
                WIFSIGNALED(status) ? "signal" : "status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    } else {
        kill(g->pid, SIGTERM);
        if (!child_wait(g->pid, 15000, &status)) {
            fprintf(stderr, "harness: gateway did not exit within 15 s of SIGTERM; killing it\n");
            child_kill(g->pid);
        } else if (WIFEXITED(status)) {
            rc = WEXITSTATUS(status);
        } else {
            fprintf(stderr, "harness: gateway died of signal %d\n",
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
    }
    g->pid = 0;

    const char *mark = NULL;
    char *log = harness_read_file(g->log_path, NULL);
    for (size_t i = 0; log != NULL && i < sizeof sanitizer_marks / sizeof sanitizer_marks[0]; i++) {
        if (strstr(log, sanitizer_marks[i]) != NULL) {
            mark = sanitizer_marks[i];
            break;
        }
    }
    free(log);
    if (mark != NULL) {
        fprintf(stderr, "harness: sanitizer report in the gateway log\n");
        rc = -2;
    }
    if (rc != 0) {
        fprintf(stderr, "harness: gateway stop returned %d\n", rc);
        print_log("gateway", g->log_path, mark ? mark : "\"draining\"");
    } else {
        /* A clean stop: remove the dir (config, link, log). A failed run keeps it for a
         * post-mortem. */
        char dir[512];
        snprintf(dir, sizeof dir, "%s", g->config_path);
        char *slash = strrchr(dir, '/');
        if (slash != NULL) {
            *slash = '\0';
            rm_tree(dir);
        }
    }
    return rc;
}

void harness_gw_kill(harness_gw_t *g)
{
    if (g->pid > 0) {
        child_kill(g->pid);
        g->pid = 0;
    }
}

bool harness_gw_wait_ready(const harness_gw_t *g, int want_status, int deadline_ms)
{
    long long end = harness_now_ms() + deadline_ms;
    for (;;) {
        if (probe_status(g->port, "/readyz") == want_status)
            return true;
        if (harness_now_ms() >= end)
            return false;
        harness_sleep_ms(POLL_MS * 2);
    }
}

/* ---------------------------------------------------------------- responses */

void harness_resp_free(harness_resp_t *r)
{
    if (r == NULL)
        return;
    free(r->headers);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *harness_header_find(const char *block, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = block, *end = block + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        if ((size_t)(line_end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e = line_end;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *vlen = (size_t)(e - v);
            return v;
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    return NULL;
}

bool harness_header_copy(const char *block, size_t len, const char *name, char *out, size_t size)
{
    size_t vl;
    const char *v = harness_header_find(block, len, name, &vl);
    if (v == NULL)
        return false;
    if (out != NULL && size > 0) {
        size_t n = vl < size - 1 ? vl : size - 1;
        memcpy(out, v, n);
        out[n] = '\0';
    }
    return true;
}

bool harness_resp_header(const harness_resp_t *r, const char *name, char *out, size_t size)
{
    if (r == NULL || r->headers == NULL)
        return false;
    return harness_header_copy(r->headers, strlen(r->headers), name, out, size);
}

/* ---------------------------------------------------------------- libcurl client */

typedef struct sink {
    char *data;
    size_t len, cap;
} sink_t;

static void sink_add(sink_t *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->data = realloc(s->data, s->cap);
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
    s->data[s->len] = '\0';
}

static size_t on_curl_body(char *p, size_t size, size_t n, void *data)
{
    sink_add(data, p, size * n);
    return size * n;
}

static size_t on_curl_header(char *p, size_t size, size_t n, void *data)
{
    sink_t *s = data;
    /* A status line starts a new response (after a 100 Continue): keep only the final one. */
    if (size * n >= 5 && memcmp(p, "HTTP/", 5) == 0)
        s->len = 0;
    sink_add(s, p, size * n);
    return size * n;
}

int harness_http(int port, const char *method, const char *path, const char *const *headers,
                 const char *body, size_t body_len, harness_resp_t *resp)
{
    static bool curl_ready;
    memset(resp, 0, sizeof *resp);
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return -1;
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    sink_t hs = {0}, bs = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_curl_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &bs);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &hs);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }
    CURLcode cc = curl_easy_perform(curl);
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(curl);
    curl_slist_free_all(list);
    if (cc != CURLE_OK) {
        fprintf(stderr, "harness: %s %s: %s\n", method, url, curl_easy_strerror(cc));
        free(hs.data);
        free(bs.data);
        return -1;
    }
    resp->status = (int)code;
    resp->headers = hs.data;
    if (bs.data == NULL)
        sink_add(&bs, "", 0);
    resp->body = bs.data;
    resp->body_len = bs.len;
    resp->json = json_loadb(resp->body, resp->body_len, 0, NULL);
    return 0;
}

/* ---------------------------------------------------------------- raw sockets */

/* Connect to 127.0.0.1:port; quiet for polling, where a refusal is expected. */
static int raw_connect(int port, bool quiet)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (!quiet)
            fprintf(stderr, "harness: connect 127.0.0.1:%d: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    /* Each write leaves as its own segment, so "1 byte per write" reaches the server so. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int harness_raw_connect(int port)
{
    return raw_connect(port, false);
}

int harness_raw_send(int fd, const void *data, size_t len, size_t chunk)
{
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (chunk > 0 && n > chunk)
            n = chunk;
        ssize_t w = send(fd, p + off, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)w;
        if (chunk > 0 && off < len)
            harness_sleep_ms(1);
    }
    return 0;
}

/*
 * Read into *buf until the peer closes, stop() says enough, or the time runs out: quiet_ms
 * without data (recv_all) or deadline_ms in all (recv_n); a negative value disables either.
 */
static char *raw_read(int fd, int quiet_ms, int deadline_ms, int want, size_t *len, bool *closed)
{
    sink_t s = {0};
    sink_add(&s, "", 0);
    bool eof = false;
    long long end = deadline_ms >= 0 ? harness_now_ms() + deadline_ms : 0;
    for (;;) {
        if (want > 0 && harness_raw_complete(s.data, s.len) >= want)
            break;
        int wait = quiet_ms;
        if (deadline_ms >= 0) {
            long long left = end - harness_now_ms();
            if (left <= 0)
                break;
            if (wait < 0 || left < wait)
                wait = (int)left;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        char tmp[16384];
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            eof = true; /* FIN, or a reset: either way the server has closed */
            break;
        }
        sink_add(&s, tmp, (size_t)n);
    }
    if (len)
        *len = s.len;
    if (closed)
        *closed = eof;
    return s.data;
}

char *harness_raw_recv_all(int fd, int timeout_ms, size_t *len, bool *closed)
{
    return raw_read(fd, timeout_ms, -1, 0, len, closed);
}

char *harness_raw_recv_n(int fd, int n, int deadline_ms, size_t *len, bool *closed)
{
    return raw_read(fd, -1, deadline_ms, n, len, closed);
}

/*
 * The response at p: its head length (through the blank line) and its total length, or false
 * when the head is incomplete. *complete tells whether the body (by Content-Length; none for
 * 1xx, 204 and 304; to the end of the data without one) is all there.
 */
static bool resp_span(const char *p, size_t len, int *status, size_t *head_len, size_t *total,
                      bool *complete)
{
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (end == NULL)
        return false;
    size_t hl = (size_t)(end - p) + 4;
    int st = 0;
    if (len >= 12 && memcmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ')
        st = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    long long cl = -1;
    for (const char *line = p; line < p + hl;) {
        const char *eol = memchr(line, '\n', (size_t)(p + hl - line));
        if (eol == NULL)
            break;
        if (eol - line > 15 && strncasecmp(line, "content-length:", 15) == 0)
            cl = strtoll(line + 15, NULL, 10);
        line = eol + 1;
    }
    if ((st >= 100 && st < 200) || st == 204 || st == 304)
        cl = 0;
    *status = st;
    *head_len = hl;
    if (cl < 0) {
        *total = len;
        *complete = false;
    } else {
        *total = hl + (size_t)cl;
        *complete = *total <= len;
        if (!*complete)
            *total = len;
    }
    return true;
}

int harness_raw_complete(const char *raw, size_t len)
{
    int n = 0;
    size_t off = 0;
    while (off < len) {
        int st;
        size_t hl, total;
        bool complete;
        if (!resp_span(raw + off, len - off, &st, &hl, &total, &complete) || !complete)
            break;
        n++;
        off += total;
    }
    return n;
}

int harness_raw_parse(const char *raw, size_t len, int n, harness_resp_t *resp)
{
    memset(resp, 0, sizeof *resp);
    size_t off = 0;
    for (int i = 0;; i++) {
        int st;
        size_t hl, total;
        bool complete;
        if (off >= len || !resp_span(raw + off, len - off, &st, &hl, &total, &complete))
            return -1;
        if (i < n) {
            if (!complete)
                return -1;
            off += total;
            continue;
        }
        const char *p = raw + off;
        resp->status = st;
        resp->headers = strndup(p, hl - 2); /* the status line and fields, each ending CRLF */
        resp->body_len = total - hl;
        resp->body = malloc(resp->body_len + 1);
        memcpy(resp->body, p + hl, resp->body_len);
        resp->body[resp->body_len] = '\0';
        resp->json = json_loadb(resp->body, resp->body_len, 0, NULL);
        return 0;
    }
}

int harness_raw_count(const char *raw, size_t len)
{
    int n = 0;
    size_t off = 0;
    while (off + 12 <= len) {
        const char *p = raw + off;
        if (memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' || p[9] > '5' ||
            p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
            break;
        n++;
        int st;
        size_t hl, total;
        bool complete;
        if (!resp_span(p, len - off, &st, &hl, &total, &complete) || !complete)
            break;
        off += total;
    }
    return n;
}

/* ---------------------------------------------------------------- misc */

char *harness_fixture_read(const char *name, size_t *len)
{
    const char *fixtures = getenv("CR_FIXTURES");
    if (fixtures == NULL || fixtures[0] == '\0')
        return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    return harness_read_file(path, len);
}

json_t *harness_fixture_tenants(void)
{
    char *text = harness_fixture_read("configs/gateway.json", NULL);
    if (text == NULL)
        return NULL;
    json_t *cfg = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    if (cfg == NULL)
        return NULL;
    json_t *tenants = json_deep_copy(json_object_get(cfg, "tenants"));
    json_decref(cfg);
    return tenants;
}

json_t *harness_tenant(json_t *tenants, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(tenants, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return t;
    }
    return NULL;
}

json_t *harness_fixture_tenants_at(const char *const *name_url)
{
    json_t *tenants = harness_fixture_tenants();
    for (size_t i = 0; tenants != NULL && name_url[i] != NULL; i += 2) {
        json_t *conn = json_object_get(harness_tenant(tenants, name_url[i]), "connector");
        if (conn == NULL || json_object_set_new(conn, "url", json_string(name_url[i + 1])) != 0) {
            json_decref(tenants);
            tenants = NULL;
        }
    }
    return tenants;
}
