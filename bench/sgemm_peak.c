/* sgemm_peak.c - the machine's matrix-product limit: OpenBLAS cblas_sgemm on 2048 x 2048 fp32
 * matrices, like ../shared/BASELINES.md's probe.
 *
 * Usage: sgemm_peak THREADS [CALLS] [N]
 * Prints one JSON object: {"threads":..,"n":..,"calls":..,"median_gflops":..,"best_gflops":..}
 * (GFLOPS of single calls: 2 N^3 / seconds; one untimed warm-up call first). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int calls = argc > 2 ? atoi(argv[2]) : 10;
    int n = argc > 3 ? atoi(argv[3]) : 2048;
    if (threads < 1 || calls < 1 || calls > 1000 || n < 16 || n > 16384) {
        fprintf(stderr, "usage: sgemm_peak THREADS [CALLS<=1000] [N]\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double *g = malloc((size_t)calls * sizeof *g);
    if (!a || !b || !c || !g) {
        fprintf(stderr, "sgemm_peak: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
        b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int i = 0; i < calls; i++) {
        double t = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        g[i] = 2.0 * n * (double)n * n / (now_s() - t) / 1e9;
    }
    qsort(g, (size_t)calls, sizeof *g, cmp);
    double median = calls % 2 ? g[calls / 2] : 0.5 * (g[calls / 2 - 1] + g[calls / 2]);
    printf("{\"threads\":%d,\"n\":%d,\"calls\":%d,\"median_gflops\":%.2f,\"best_gflops\":%.2f}\n", threads, n, calls,
           median, g[calls - 1]);
    free(a);
    free(b);
    free(c);
    free(g);
    return 0;
}
