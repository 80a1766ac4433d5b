/* Memory dirtier: the init of the ground-truth guest (tools/qemu_groundtruth).
 *
 * usage: dirtier WSET_MIB RATE_PAGES_PER_S MODE SEED [SLICE_MS [FLUSH]]
 *   WSET_MIB   working set, MiB (allocated with mmap and written once, so every page is non-zero)
 *   RATE       page writes per second (0 = idle: the guest only sleeps)
 *   MODE       "rand" (uniform random page of the working set) or "seq" (next page, wrapping)
 *   SEED       seed of the xorshift64* generator (rand mode)
 *   SLICE_MS   pacing slice (default 10 ms): each slice does the writes due by its end, then sleeps
 *   FLUSH      1 (default): after each slice, mprotect a 64-page scratch buffer read-only and back,
 *              which makes the kernel flush this CPU's TLB (more pages than
 *              tlb_single_page_flush_ceiling = 33, so a full flush). Under TCG this re-arms QEMU's
 *              TLB_NOTDIRTY on every page, bounding the lost-dirty-bit bug of QEMU < 9.0 (see
 *              datasets/README.md) to writes within one slice. 0: no flush.
 *
 * Every write stores a new 64-bit value into one word of the page (so the page content changes).
 * A backlog larger than one 100 ms window is dropped, not caught up, so a descheduled guest does
 * not burst. Once per second it prints, on the console:
 *   DIRTY t=<guest s> writes=<n> distinct=<pages> rate=<writes/s> wset_pages=<p>
 * where writes and distinct count the interval since the previous line. "READY" is printed after
 * the working set has been written once.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t xs;
static uint64_t next_rand(void) {
    xs ^= xs >> 12; xs ^= xs << 25; xs ^= xs >> 27;
    return xs * 2685821657736338717ull;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: dirtier WSET_MIB RATE MODE SEED [SLICE_MS]\n");
        return 2;
    }
    uint64_t wset_pages = (uint64_t)atoll(argv[1]) * (1024 * 1024 / PAGE);
    double rate = atof(argv[2]);
    int random_mode = strcmp(argv[3], "rand") == 0;
    xs = (uint64_t)atoll(argv[4]) * 0x9E3779B97F4A7C15ull + 1;
    double slice = (argc > 5 ? atof(argv[5]) : 10.0) / 1000.0;
    int flush = argc > 6 ? atoi(argv[6]) : 1;
    if (wset_pages == 0) wset_pages = 1;
    size_t scratch_len = 64 * PAGE;
    volatile char *scratch = mmap(NULL, scratch_len, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (scratch == MAP_FAILED) { perror("dirtier: scratch"); return 1; }
    for (size_t i = 0; i < scratch_len; i += PAGE) scratch[i] = 1;

    volatile uint64_t *mem = mmap(NULL, wset_pages * PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint8_t *seen = calloc(wset_pages, 1);
    if (mem == MAP_FAILED || !seen) { perror("dirtier: alloc"); return 1; }
    for (uint64_t p = 0; p < wset_pages; p++) mem[p * (PAGE / 8)] = p + 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("READY wset_pages=%llu rate=%.0f mode=%s slice_ms=%.1f flush=%d\n",
           (unsigned long long)wset_pages, rate, random_mode ? "rand" : "seq", slice * 1000, flush);

    double t0 = now(), last_report = t0;
    uint64_t done = 0, cursor = 0, stamp = 1, iv_writes = 0, iv_distinct = 0;
    for (;;) {
        double t = now();
        if (rate > 0) {
            double due = rate * (t - t0 + slice);
            if (due - (double)done > rate * 0.1) done = (uint64_t)(due - rate * 0.1);  /* drop backlog */
            while ((double)done < due) {
                uint64_t p = random_mode ? next_rand() % wset_pages : cursor;
                if (!random_mode && ++cursor == wset_pages) cursor = 0;
                mem[p * (PAGE / 8) + (stamp & 511)] = stamp;
                stamp++;
                done++;
                iv_writes++;
                if (!seen[p]) { seen[p] = 1; iv_distinct++; }
                if ((done & 1023) == 0 && now() - t > slice) break;  /* never overrun a slice by much */
            }
        }
        if (flush) {
            mprotect((void *)scratch, scratch_len, PROT_READ);
            mprotect((void *)scratch, scratch_len, PROT_READ | PROT_WRITE);
        }
        t = now();
        if (t - last_report >= 1.0) {
            printf("DIRTY t=%.3f writes=%llu distinct=%llu rate=%.0f wset_pages=%llu\n", t - t0,
                   (unsigned long long)iv_writes, (unsigned long long)iv_distinct,
                   iv_writes / (t - last_report), (unsigned long long)wset_pages);
            memset(seen, 0, wset_pages);
            iv_writes = iv_distinct = 0;
            last_report = t;
        }
        double left = slice - (now() - t);
        if (left > 0) {
            struct timespec ts = {0, (long)(left * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
}
