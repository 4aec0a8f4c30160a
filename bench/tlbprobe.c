/*
 * tlbprobe.c - what a system call costs the memory accesses that follow it, by working-set
 * size. Reads one byte from each of --pages random 4 KiB pages of a --mb MiB buffer, in a
 * random order, --reads times, and calls getppid(2) every --syscall-every reads (0: never).
 * Prints the time per read, with and without the system calls' own time (measured apart).
 * --huge 1 asks for transparent huge pages for the buffer (madvise MADV_HUGEPAGE).
 *
 *   bench_tlbprobe --mb 1800 --pages 100000 --syscall-every 20 [--reads 20000000] [--huge 1]
 *
 * On a kernel with page-table isolation and no PCID (/proc/cpuinfo flags: "pti", no "pcid"),
 * every system call flushes the TLB, so the reads after it walk the page tables again; those
 * walks reach memory when the pages read are spread over a large buffer. bench/README.md
 * ("1,000 vs 1,000,000 stored orders") uses it to explain Redis's CPU per saga with a large
 * dataset on such a machine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static long arg_long(int argc, char **argv, const char *name, long dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return strtol(argv[i + 1], NULL, 10);
    return dflt;
}

int main(int argc, char **argv)
{
    long mb = arg_long(argc, argv, "--mb", 64);
    long pages = arg_long(argc, argv, "--pages", 10000);
    long every = arg_long(argc, argv, "--syscall-every", 0);
    long reads = arg_long(argc, argv, "--reads", 20000000);
    long huge = arg_long(argc, argv, "--huge", 0);
    if (mb < 1 || pages < 1 || every < 0 || reads < 1) {
        fprintf(stderr, "usage: %s --mb N --pages N --syscall-every N [--reads N] [--huge 1]\n",
                argv[0]);
        return 2;
    }
    size_t size = (size_t)mb << 20, n_pages = size / 4096;
    unsigned char *buf = NULL;
    if (posix_memalign((void **)&buf, 2u << 20, size) != 0)
        buf = NULL;
    if (buf != NULL && huge)
        madvise(buf, size, MADV_HUGEPAGE);
    size_t *order = malloc((size_t)pages * sizeof *order);
    if (buf == NULL || order == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memset(buf, 1, size); /* every page faulted in before timing */
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    for (long i = 0; i < pages; i++)
        order[i] = (size_t)(next_rand(&seed) % n_pages) * 4096 + (next_rand(&seed) % 64) * 64;

    volatile unsigned sum = 0;
    double t0 = now_s();
    for (long i = 0; i < reads; i++) {
        sum += buf[order[next_rand(&seed) % (uint64_t)pages]];
        if (every > 0 && i % every == 0)
            syscall(SYS_getppid);
    }
    double t_all = now_s() - t0;
    /* the same random numbers without the reads, and the system calls alone */
    t0 = now_s();
    for (long i = 0; i < reads; i++)
        sum += (unsigned)(next_rand(&seed) % (uint64_t)pages);
    double t_rand = now_s() - t0;
    t0 = now_s();
    for (long i = 0; every > 0 && i < reads / every; i++)
        syscall(SYS_getppid);
    double t_sys = now_s() - t0;
    printf("{\"mb\":%ld,\"pages\":%ld,\"huge\":%ld,\"syscall_every\":%ld,\"ns_per_read\":%.1f,"
           "\"ns_per_read_less_syscalls\":%.1f,\"ns_per_syscall\":%.0f}\n",
           mb, pages, huge, every, (t_all - t_rand) / (double)reads * 1e9,
           (t_all - t_rand - t_sys) / (double)reads * 1e9,
           every > 0 ? t_sys / (double)(reads / every) * 1e9 : 0.0);
    free(order);
    free(buf);
    return sum == 0xFFFFFFFFu; /* keeps the reads */
}
