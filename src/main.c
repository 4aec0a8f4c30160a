/*
 * main.c - the command line: serve, check-config, hash-key, --version. Everything else is in
 * the crcore library (app.c and below).
 */
#include "app.h"
#include "config.h"
#include "util/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *out)
{
    fputs("usage: crossroads serve [--config FILE]\n"
          "       crossroads check-config [--config FILE]\n"
          "       crossroads hash-key KEY\n"
          "       crossroads --version\n"
          "The config path defaults to $CROSSROADS_CONFIG. CROSSROADS_LISTEN (host:port) and\n"
          "CROSSROADS_REDIS_URL override the file; CROSSROADS_LOG_LEVEL sets the log level.\n",
          out);
    return out == stderr ? 2 : 0;
}

/* The --config FILE argument, else $CROSSROADS_CONFIG; NULL (after a message) if neither. */
static const char *config_arg(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
        fprintf(stderr, "crossroads: unknown argument '%s'\n", argv[i]);
        return NULL;
    }
    const char *env = getenv("CROSSROADS_CONFIG");
    if (env == NULL || *env == '\0')
        fputs("crossroads: no config: pass --config FILE or set CROSSROADS_CONFIG\n", stderr);
    return env && *env ? env : NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("crossroads %s\n", CR_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return usage(stdout);
    if (strcmp(cmd, "hash-key") == 0) {
        if (argc != 3 || argv[2][0] == '\0') {
            fputs("usage: crossroads hash-key KEY\n", stderr);
            return 2;
        }
        uint8_t d[32];
        char hex[65];
        crypto_sha256(argv[2], strlen(argv[2]), d);
        crypto_hex(d, 32, hex);
        puts(hex);
        return 0;
    }
    if (strcmp(cmd, "check-config") == 0) {
        const char *path = config_arg(argc, argv);
        if (path == NULL)
            return 2;
        cfg_t *cfg;
        char err[512];
        if (cfg_load_file(path, &cfg, err, sizeof err) != 0) {
            fprintf(stderr, "crossroads: %s\n", err);
            return 1;
        }
        printf("%s: OK (%zu tenants, %zu mappings)\n", path, cfg->n_tenants, cfg->n_mappings);
        cfg_unref(cfg);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) {
        const char *path = config_arg(argc, argv);
        if (path == NULL)
            return 2;
        return app_serve(path);
    }
    fprintf(stderr, "crossroads: unknown command '%s'\n", cmd);
    return usage(stderr);
}
