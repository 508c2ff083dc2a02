/* sysinfo.h - what this machine can give a model: CPUs, memory, cgroup limits, disk, SIMD.
 *
 * sysinfo_probe() reads /proc/meminfo, /proc/self/cgroup, cgroup v2 (cpu.max, memory.max,
 * memory.current) or v1 (cpu.cfs_quota_us / cpu.cfs_period_us, memory.limit_in_bytes,
 * memory.usage_in_bytes), sched_getaffinity(), statvfs() on the models directory (or its nearest
 * existing parent), and CPUID (x86) or /proc/cpuinfo flags.
 *
 * Test override: $MCLI_SYSINFO_OVERRIDE holds a JSON object (or "@/path/to/file.json") whose
 * numeric/boolean fields replace probed values, e.g. '{"ram_available_mb":1500,"disk_free_mb":100}'.
 * Field names are those of sysinfo_to_json(). `overridden` is then true and printed.
 *
 * The probe root (default "/") can be redirected for tests with sysinfo_probe_root(), which reads
 * <root>/proc/... and <root>/sys/fs/cgroup/... instead.
 *
 * Thread-safety: no shared state. Ownership: mcli_sysinfo is a plain value.
 */
#ifndef MCLI_SYS_SYSINFO_H
#define MCLI_SYS_SYSINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/status.h"

typedef struct {
    /* CPU */
    int cpus_online;          /* sysconf(_SC_NPROCESSORS_ONLN) */
    int cpus_affinity;        /* CPUs in this process's sched_getaffinity mask */
    double cgroup_cpu_quota;  /* cores allowed by the cgroup CPU quota; 0 = no quota */
    double cpus_effective;    /* min(affinity, ceil quota) as a number of cores */
    char cpu_model[96];
    bool sse4_2, avx, avx2, fma, f16c, avx512f, avx512bw, avx512_vnni, avx_vnni, neon;
    /* memory, MiB; -1 = unknown / unlimited */
    int64_t ram_total_mb;
    int64_t ram_available_mb;      /* MemAvailable */
    int64_t cgroup_mem_limit_mb;   /* memory.max / limit_in_bytes; -1 = no limit */
    int64_t cgroup_mem_usage_mb;   /* memory.current / usage_in_bytes; -1 = unknown */
    int64_t mem_effective_mb;      /* min(ram_available, cgroup limit - usage) */
    int cgroup_version;            /* 0 none found, 1, 2 */
    /* disk, MiB, on the filesystem of disk_path */
    int64_t disk_free_mb;          /* f_bavail * f_frsize */
    int64_t disk_total_mb;
    char disk_path[512];
    bool overridden;               /* MCLI_SYSINFO_OVERRIDE was applied */
} mcli_sysinfo;

/* Probes the machine; models_dir (may be NULL = ".") is where disk space is measured. Missing
 * sources leave fields at -1/0 rather than failing; a malformed override is an error. */
mcli_status sysinfo_probe(const char *models_dir, mcli_sysinfo *out, mcli_err *err) MCLI_MUST_USE;

/* Same, reading /proc and /sys/fs/cgroup under root (for tests); root "" or "/" = the real ones.
 * CPUID and statvfs still describe the real machine. */
mcli_status sysinfo_probe_root(const char *root, const char *models_dir, mcli_sysinfo *out,
                               mcli_err *err) MCLI_MUST_USE;

/* Applies a JSON override object (text) to info. INVALID_ARG on bad JSON / unknown field types. */
mcli_status sysinfo_apply_override(mcli_sysinfo *info, const char *json_text, mcli_err *err) MCLI_MUST_USE;

/* Recomputes mem_effective_mb and cpus_effective from the other fields. */
void sysinfo_derive(mcli_sysinfo *info);

/* The JSON object of every field (one line). Caller frees with free(); NULL if out of memory. */
char *sysinfo_to_json(const mcli_sysinfo *info);

/* Human-readable multi-line report. */
void sysinfo_print(const mcli_sysinfo *info, FILE *out);

#endif
