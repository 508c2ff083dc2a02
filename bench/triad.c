/* triad.c - the machine's memory-bandwidth limit: a STREAM-like triad a[i] = b[i] + s * c[i]
 * over three arrays of doubles much larger than the caches, split over THREADS pthreads.
 * Bytes counted as 3 x 8 per element (as STREAM and ../shared/BASELINES.md do).
 *
 * Usage: triad THREADS [MIB_PER_ARRAY] [PASSES]
 * Prints {"threads":..,"mib_per_array":..,"passes":..,"best_gbs":..,"median_gbs":..}. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    double *a, *b, *c;
    size_t lo, hi;
    pthread_barrier_t *start, *stop;
    int passes;
} slice;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *worker(void *p)
{
    slice *s = p;
    /* first touch of this thread's part */
    for (size_t i = s->lo; i < s->hi; i++) {
        s->a[i] = 0.0;
        s->b[i] = 1.0;
        s->c[i] = 2.0;
    }
    for (int k = 0; k < s->passes; k++) {
        pthread_barrier_wait(s->start);
        for (size_t i = s->lo; i < s->hi; i++)
            s->a[i] = s->b[i] + 3.0 * s->c[i];
        pthread_barrier_wait(s->stop);
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int mib = argc > 2 ? atoi(argv[2]) : 256;
    int passes = argc > 3 ? atoi(argv[3]) : 7;
    if (threads < 1 || threads > 256 || mib < 16 || mib > 8192 || passes < 1 || passes > 100) {
        fprintf(stderr, "usage: triad THREADS [MIB_PER_ARRAY 16..8192] [PASSES]\n");
        return 2;
    }
    size_t n = (size_t)mib * 1024 * 1024 / sizeof(double);
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    slice *sl = calloc((size_t)threads, sizeof *sl);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    double *gbs = calloc((size_t)passes, sizeof *gbs);
    if (!a || !b || !c || !sl || !tid || !gbs) {
        fprintf(stderr, "triad: out of memory\n");
        return 1;
    }
    pthread_barrier_t start, stop;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&stop, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        sl[t] = (slice){a, b, c, n * (size_t)t / (size_t)threads, n * (size_t)(t + 1) / (size_t)threads, &start, &stop,
                        passes};
        pthread_create(&tid[t], NULL, worker, &sl[t]);
    }
    for (int k = 0; k < passes; k++) {
        double t0 = now_s();
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&stop);
        gbs[k] = 3.0 * 8.0 * (double)n / (now_s() - t0) / 1e9;
    }
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    qsort(gbs, (size_t)passes, sizeof *gbs, cmp);
    printf("{\"threads\":%d,\"mib_per_array\":%d,\"passes\":%d,\"best_gbs\":%.2f,\"median_gbs\":%.2f,\"check\":%.1f}\n",
           threads, mib, passes, gbs[passes - 1], gbs[passes / 2], a[n / 2]);
    free(a);
    free(b);
    free(c);
    free(sl);
    free(tid);
    free(gbs);
    return 0;
}
