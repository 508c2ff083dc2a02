/* sysinfo.c - probe CPUs, memory, cgroup limits, disk and SIMD (see sysinfo.h). */
#include "sys/sysinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define SMALL_FILE_MAX 4096      /* cgroup/meminfo-style files we read */
#define CPUINFO_MAX (256 * 1024) /* /proc/cpuinfo is read up to this much */
#define PATH_CAP 1024
#define UNLIMITED_BYTES (INT64_C(1) << 60) /* v1 reports "no limit" as ~2^63 rounded to pages */

/* ---- small bounded readers ---- */

/* Reads up to cap-1 bytes of path into buf (NUL-terminated). Returns bytes read, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

/* Parses a non-negative decimal at *p (advancing it); false on no digits or overflow. */
static bool parse_u63(const char **p, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

/* Reads a file holding one integer (or "max"). Returns true with *out = -1 for "max". */
static bool read_int_file(const char *path, int64_t *out)
{
    char buf[128];
    if (read_small(path, buf, sizeof buf) <= 0)
        return false;
    if (strncmp(buf, "max", 3) == 0) {
        *out = -1;
        return true;
    }
    const char *p = buf;
    if (*p == '-') /* v1 cfs_quota_us of -1 = no quota */
        return (*out = -1), true;
    return parse_u63(&p, out);
}

static int64_t to_mb(int64_t bytes)
{
    return bytes < 0 ? -1 : bytes / (1024 * 1024);
}

/* ---- /proc/meminfo ---- */

static void probe_meminfo(const char *root, mcli_sysinfo *info)
{
    char path[PATH_CAP], buf[SMALL_FILE_MAX];
    snprintf(path, sizeof path, "%s/proc/meminfo", root);
    if (read_small(path, buf, sizeof buf) <= 0)
        return;
    static const struct {
        const char *key;
        size_t off;
    } keys[] = {{"MemTotal:", offsetof(mcli_sysinfo, ram_total_mb)},
                {"MemAvailable:", offsetof(mcli_sysinfo, ram_available_mb)}};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *line = buf;
        size_t klen = strlen(keys[k].key);
        while (line && *line) {
            if (strncmp(line, keys[k].key, klen) == 0) {
                const char *p = line + klen;
                while (*p == ' ' || *p == '\t')
                    p++;
                int64_t kb;
                if (parse_u63(&p, &kb))
                    *(int64_t *)((char *)info + keys[k].off) = kb / 1024;
                break;
            }
            line = strchr(line, '\n');
            if (line)
                line++;
        }
    }
}

/* ---- cgroups ---- */

typedef struct {
    char v2_path[PATH_CAP];   /* from "0::/path", "" if absent */
    char mem_path[PATH_CAP];  /* v1 memory controller path */
    char cpu_path[PATH_CAP];  /* v1 cpu controller path */
    bool has_v2, has_v1_mem, has_v1_cpu;
} cgroup_paths;

/* True if the comma-separated list controllers contains name. */
static bool has_controller(const char *list, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && list[j] != ',')
            j++;
        if (j - i == nlen && memcmp(list + i, name, nlen) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

static void parse_proc_cgroup(const char *text, cgroup_paths *cg)
{
    const char *line = text;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *c1 = memchr(line, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
        if (c1 && c2) {
            const char *ctl = c1 + 1;
            size_t ctl_len = (size_t)(c2 - ctl);
            const char *path = c2 + 1;
            size_t path_len = len - (size_t)(path - line);
            if (path_len < PATH_CAP && path_len > 0 && path[0] == '/') {
                if (ctl_len == 0 && c1 - line == 1 && line[0] == '0') {
                    memcpy(cg->v2_path, path, path_len);
                    cg->v2_path[path_len] = '\0';
                    cg->has_v2 = true;
                }
                if (has_controller(ctl, ctl_len, "memory")) {
                    memcpy(cg->mem_path, path, path_len);
                    cg->mem_path[path_len] = '\0';
                    cg->has_v1_mem = true;
                }
                if (has_controller(ctl, ctl_len, "cpu")) {
                    memcpy(cg->cpu_path, path, path_len);
                    cg->cpu_path[path_len] = '\0';
                    cg->has_v1_cpu = true;
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
}

/* Smallest memory limit from dir up to base (a limit on any ancestor applies), -1 = none.
 * Also fills *usage from dir (or the first dir on the way up that has a usage file). */
static int64_t walk_mem_limit(const char *base, const char *rel, const char *limit_file, const char *usage_file,
                              int64_t *usage)
{
    char dir[PATH_CAP];
    int n = snprintf(dir, sizeof dir, "%s%s", base, strcmp(rel, "/") == 0 ? "" : rel);
    if (n < 0 || (size_t)n >= sizeof dir)
        return -1;
    size_t base_len = strlen(base);
    int64_t best = -1;
    for (int depth = 0; depth < 64; depth++) {
        char f[PATH_CAP + 64];
        int64_t v;
        snprintf(f, sizeof f, "%s/%s", dir, limit_file);
        if (read_int_file(f, &v) && v >= 0 && v < UNLIMITED_BYTES && (best < 0 || v < best))
            best = v;
        snprintf(f, sizeof f, "%s/%s", dir, usage_file);
        if (*usage < 0 && read_int_file(f, &v) && v >= 0)
            *usage = v;
        if (strlen(dir) <= base_len)
            break;
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < base_len)
            break;
        *slash = '\0';
    }
    return best;
}

static bool dir_exists(const char *p)
{
    return access(p, F_OK) == 0;
}

static void probe_cgroup(const char *root, mcli_sysinfo *info)
{
    char path[PATH_CAP], buf[SMALL_FILE_MAX];
    cgroup_paths cg;
    memset(&cg, 0, sizeof cg);
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    if (read_small(path, buf, sizeof buf) <= 0)
        return;
    parse_proc_cgroup(buf, &cg);

    int64_t limit = -1, usage = -1;
    double quota = 0;
    int version = 0;

    /* v1 controllers, when the kernel attached them to a v1 hierarchy. */
    if (cg.has_v1_mem) {
        char base[PATH_CAP];
        snprintf(base, sizeof base, "%s/sys/fs/cgroup/memory", root);
        if (dir_exists(base)) {
            version = 1;
            char probe[2 * PATH_CAP];
            snprintf(probe, sizeof probe, "%s%s", base, cg.mem_path);
            /* Inside a cgroup namespace the path may not exist below the mount: use the mount. */
            limit = walk_mem_limit(base, dir_exists(probe) ? cg.mem_path : "/", "memory.limit_in_bytes",
                                   "memory.usage_in_bytes", &usage);
        }
    }
    if (cg.has_v1_cpu) {
        static const char *const mounts[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
        for (size_t i = 0; i < 3; i++) {
            char dir[PATH_CAP + 32], f[PATH_CAP + 64];
            snprintf(dir, sizeof dir, "%s/sys/fs/cgroup/%s%s", root, mounts[i], cg.cpu_path);
            if (!dir_exists(dir))
                snprintf(dir, sizeof dir, "%s/sys/fs/cgroup/%s", root, mounts[i]);
            int64_t q, per;
            snprintf(f, sizeof f, "%s/cpu.cfs_quota_us", dir);
            if (!read_int_file(f, &q))
                continue;
            version = 1;
            snprintf(f, sizeof f, "%s/cpu.cfs_period_us", dir);
            if (q > 0 && read_int_file(f, &per) && per > 0)
                quota = (double)q / (double)per;
            break;
        }
    }
    /* v2 (unified): at /sys/fs/cgroup, or /sys/fs/cgroup/unified in hybrid setups. */
    if (cg.has_v2) {
        static const char *const bases[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
        for (size_t i = 0; i < 2; i++) {
            char base[PATH_CAP], f[2 * PATH_CAP + 64];
            snprintf(base, sizeof base, "%s%s", root, bases[i]);
            snprintf(f, sizeof f, "%s/cgroup.controllers", base);
            if (!dir_exists(f))
                continue;
            if (version == 0)
                version = 2;
            char dir[2 * PATH_CAP];
            snprintf(dir, sizeof dir, "%s%s", base, strcmp(cg.v2_path, "/") == 0 ? "" : cg.v2_path);
            const char *rel = dir_exists(dir) ? cg.v2_path : "/";
            int64_t usage2 = -1;
            int64_t limit2 = walk_mem_limit(base, rel, "memory.max", "memory.current", &usage2);
            if (limit2 >= 0 && (limit < 0 || limit2 < limit)) {
                limit = limit2;
                usage = usage2;
                version = 2;
            } else if (usage < 0) {
                usage = usage2;
            }
            snprintf(dir, sizeof dir, "%s%s", base, strcmp(rel, "/") == 0 ? "" : rel);
            snprintf(f, sizeof f, "%s/cpu.max", dir);
            char cbuf[128];
            if (read_small(f, cbuf, sizeof cbuf) > 0 && strncmp(cbuf, "max", 3) != 0) {
                const char *p = cbuf;
                int64_t q, per;
                if (parse_u63(&p, &q) && *p == ' ' && (p++, parse_u63(&p, &per)) && per > 0 && q > 0) {
                    double qq = (double)q / (double)per;
                    if (quota <= 0 || qq < quota)
                        quota = qq;
                    version = 2;
                }
            }
            break;
        }
    }
    info->cgroup_version = version;
    info->cgroup_mem_limit_mb = to_mb(limit);
    info->cgroup_mem_usage_mb = to_mb(usage);
    info->cgroup_cpu_quota = quota;
}

/* ---- CPU ---- */

/* True if the space-separated word list (one line) contains word. */
static bool has_word(const char *line, size_t len, const char *word)
{
    size_t wl = strlen(word);
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == ':'))
            i++;
        size_t j = i;
        while (j < len && line[j] != ' ' && line[j] != '\t')
            j++;
        if (j - i == wl && memcmp(line + i, word, wl) == 0)
            return true;
        i = j;
    }
    return false;
}

static void probe_cpuinfo(const char *root, mcli_sysinfo *info)
{
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/proc/cpuinfo", root);
    char *buf = malloc(CPUINFO_MAX);
    if (!buf)
        return;
    if (read_small(path, buf, CPUINFO_MAX) <= 0) {
        free(buf);
        return;
    }
    bool got_flags = false, got_model = false;
    const char *line = buf;
    while (line && *line && !(got_flags && got_model)) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *colon = memchr(line, ':', len);
        if (colon) {
            size_t key_len = (size_t)(colon - line);
            while (key_len > 0 && (line[key_len - 1] == ' ' || line[key_len - 1] == '\t'))
                key_len--;
            const char *val = colon + 1;
            size_t val_len = len - (size_t)(val - line);
            if (!got_flags && ((key_len == 5 && memcmp(line, "flags", 5) == 0) ||
                               (key_len == 8 && memcmp(line, "Features", 8) == 0))) {
                got_flags = true;
                info->sse4_2 = has_word(val, val_len, "sse4_2");
                info->avx = has_word(val, val_len, "avx");
                info->avx2 = has_word(val, val_len, "avx2");
                info->fma = has_word(val, val_len, "fma");
                info->f16c = has_word(val, val_len, "f16c");
                info->avx512f = has_word(val, val_len, "avx512f");
                info->avx512bw = has_word(val, val_len, "avx512bw");
                info->avx512_vnni = has_word(val, val_len, "avx512_vnni");
                info->avx_vnni = has_word(val, val_len, "avx_vnni");
                info->neon = has_word(val, val_len, "asimd") || has_word(val, val_len, "neon");
            } else if (!got_model && key_len == 10 && memcmp(line, "model name", 10) == 0) {
                got_model = true;
                while (val_len > 0 && *val == ' ')
                    val++, val_len--;
                size_t n = val_len < sizeof info->cpu_model - 1 ? val_len : sizeof info->cpu_model - 1;
                memcpy(info->cpu_model, val, n);
                info->cpu_model[n] = '\0';
            }
        }
        line = end ? end + 1 : NULL;
    }
    free(buf);
}

/* ---- disk ---- */

static void probe_disk(const char *models_dir, mcli_sysinfo *info)
{
    char p[sizeof info->disk_path];
    snprintf(p, sizeof p, "%s", models_dir && models_dir[0] ? models_dir : ".");
    /* The models directory may not exist yet: measure its nearest existing parent. */
    struct statvfs vfs;
    for (;;) {
        if (statvfs(p, &vfs) == 0)
            break;
        char *slash = strrchr(p, '/');
        if (!slash) {
            snprintf(p, sizeof p, ".");
            if (statvfs(p, &vfs) != 0)
                return;
            break;
        }
        if (slash == p) {
            p[1] = '\0';
            if (statvfs(p, &vfs) != 0)
                return;
            break;
        }
        *slash = '\0';
    }
    snprintf(info->disk_path, sizeof info->disk_path, "%s", p);
    info->disk_free_mb = (int64_t)((unsigned long long)vfs.f_bavail * vfs.f_frsize / (1024ULL * 1024ULL));
    info->disk_total_mb = (int64_t)((unsigned long long)vfs.f_blocks * vfs.f_frsize / (1024ULL * 1024ULL));
}

/* ---- fields table: JSON output and override ---- */

typedef enum { F_I64, F_INT, F_DBL, F_BOOL, F_STR } field_type;
typedef struct {
    const char *name;
    field_type type;
    size_t off;
    size_t cap;
} field;

#define FLD(name, type) {#name, type, offsetof(mcli_sysinfo, name), sizeof(((mcli_sysinfo *)0)->name)}
static const field fields[] = {
    FLD(cpus_online, F_INT),        FLD(cpus_affinity, F_INT),       FLD(cgroup_cpu_quota, F_DBL),
    FLD(cpus_effective, F_DBL),     FLD(cpu_model, F_STR),           FLD(sse4_2, F_BOOL),
    FLD(avx, F_BOOL),               FLD(avx2, F_BOOL),               FLD(fma, F_BOOL),
    FLD(f16c, F_BOOL),              FLD(avx512f, F_BOOL),            FLD(avx512bw, F_BOOL),
    FLD(avx512_vnni, F_BOOL),       FLD(avx_vnni, F_BOOL),           FLD(neon, F_BOOL),
    FLD(ram_total_mb, F_I64),       FLD(ram_available_mb, F_I64),    FLD(cgroup_mem_limit_mb, F_I64),
    FLD(cgroup_mem_usage_mb, F_I64), FLD(mem_effective_mb, F_I64),   FLD(cgroup_version, F_INT),
    FLD(disk_free_mb, F_I64),       FLD(disk_total_mb, F_I64),       FLD(disk_path, F_STR),
    FLD(overridden, F_BOOL),
};
#undef FLD
#define N_FIELDS (sizeof fields / sizeof fields[0])

void sysinfo_derive(mcli_sysinfo *info)
{
    int64_t mem = info->ram_available_mb;
    if (info->cgroup_mem_limit_mb >= 0) {
        int64_t room = info->cgroup_mem_limit_mb - (info->cgroup_mem_usage_mb > 0 ? info->cgroup_mem_usage_mb : 0);
        if (room < 0)
            room = 0;
        if (mem < 0 || room < mem)
            mem = room;
    }
    info->mem_effective_mb = mem;
    double cpus = info->cpus_affinity > 0 ? info->cpus_affinity : info->cpus_online;
    if (info->cgroup_cpu_quota > 0 && info->cgroup_cpu_quota < cpus)
        cpus = info->cgroup_cpu_quota;
    info->cpus_effective = cpus;
}

mcli_status sysinfo_apply_override(mcli_sysinfo *info, const char *json_text, mcli_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json_text, strnlen(json_text, 65536), 0, &jerr);
    if (!root || !json_is_object(root)) {
        mcli_fail(err, MCLI_ERR_INVALID_ARG, "MCLI_SYSINFO_OVERRIDE is not a JSON object: %s",
                  root ? "not an object" : jerr.text);
        json_decref(root);
        return MCLI_ERR_INVALID_ARG;
    }
    const char *key;
    json_t *val;
    bool derived_set = false;
    json_object_foreach(root, key, val) {
        const field *f = NULL;
        for (size_t i = 0; i < N_FIELDS; i++)
            if (strcmp(fields[i].name, key) == 0)
                f = &fields[i];
        if (!f) {
            mcli_fail(err, MCLI_ERR_INVALID_ARG, "MCLI_SYSINFO_OVERRIDE: unknown field '%s'", key);
            json_decref(root); /* after the message: key points into root */
            return MCLI_ERR_INVALID_ARG;
        }
        char *dst = (char *)info + f->off;
        bool ok = true;
        /* memcpy, not a typed store through a cast: dst is a byte offset into the struct. */
        if (f->type == F_STR) {
            ok = json_is_string(val);
            if (ok)
                snprintf(dst, f->cap, "%s", json_string_value(val));
        } else if (f->type == F_BOOL) {
            ok = json_is_boolean(val);
            bool b = json_is_true(val);
            if (ok)
                memcpy(dst, &b, sizeof b);
        } else {
            ok = json_is_number(val);
            double d = json_number_value(val);
            int64_t i64 = (int64_t)d;
            int i32 = (int)d;
            if (ok && f->type == F_I64)
                memcpy(dst, &i64, sizeof i64);
            else if (ok && f->type == F_INT)
                memcpy(dst, &i32, sizeof i32);
            else if (ok)
                memcpy(dst, &d, sizeof d);
        }
        if (!ok) {
            mcli_fail(err, MCLI_ERR_INVALID_ARG, "MCLI_SYSINFO_OVERRIDE: field '%s' has the wrong type", key);
            json_decref(root);
            return MCLI_ERR_INVALID_ARG;
        }
        if (strcmp(key, "mem_effective_mb") == 0 || strcmp(key, "cpus_effective") == 0)
            derived_set = true;
    }
    json_decref(root);
    info->overridden = true;
    if (!derived_set)
        sysinfo_derive(info);
    return MCLI_OK;
}

char *sysinfo_to_json(const mcli_sysinfo *info)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    for (size_t i = 0; i < N_FIELDS; i++) {
        const char *src = (const char *)info + fields[i].off;
        json_t *v = NULL;
        int64_t i64;
        int i32;
        double d;
        bool b;
        switch (fields[i].type) {
        case F_I64: memcpy(&i64, src, sizeof i64); v = json_integer(i64); break;
        case F_INT: memcpy(&i32, src, sizeof i32); v = json_integer(i32); break;
        case F_DBL: memcpy(&d, src, sizeof d); v = json_real(d); break;
        case F_BOOL: memcpy(&b, src, sizeof b); v = json_boolean(b); break;
        case F_STR: v = json_string(src); break;
        }
        json_object_set_new(o, fields[i].name, v ? v : json_null());
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

mcli_status sysinfo_probe_root(const char *root, const char *models_dir, mcli_sysinfo *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    out->ram_total_mb = out->ram_available_mb = -1;
    out->cgroup_mem_limit_mb = out->cgroup_mem_usage_mb = -1;
    out->disk_free_mb = out->disk_total_mb = -1;
    const char *r = (root && strcmp(root, "/") != 0) ? root : "";

    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->cpus_online = n > 0 ? (int)n : 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    out->cpus_affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : out->cpus_online;

    probe_meminfo(r, out);
    probe_cgroup(r, out);
    probe_cpuinfo(r, out);
    probe_disk(models_dir, out);
    sysinfo_derive(out);

    const char *ov = getenv("MCLI_SYSINFO_OVERRIDE");
    if (ov && ov[0]) {
        if (ov[0] == '@') {
            char buf[SMALL_FILE_MAX];
            if (read_small(ov + 1, buf, sizeof buf) < 0)
                return mcli_fail(err, MCLI_ERR_NOT_FOUND, "MCLI_SYSINFO_OVERRIDE file %s: %s", ov + 1, strerror(errno));
            return sysinfo_apply_override(out, buf, err);
        }
        return sysinfo_apply_override(out, ov, err);
    }
    return MCLI_OK;
}

mcli_status sysinfo_probe(const char *models_dir, mcli_sysinfo *out, mcli_err *err)
{
    return sysinfo_probe_root(NULL, models_dir, out, err);
}

static void print_mb(FILE *out, const char *label, int64_t mb, const char *none)
{
    if (mb < 0)
        fprintf(out, "  %-22s %s\n", label, none);
    else
        fprintf(out, "  %-22s %lld MB (%.1f GB)\n", label, (long long)mb, (double)mb / 1024.0);
}

void sysinfo_print(const mcli_sysinfo *info, FILE *out)
{
    fprintf(out, "System analysis%s\n", info->overridden ? " (figures overridden by MCLI_SYSINFO_OVERRIDE)" : "");
    fprintf(out, "  %-22s %s\n", "CPU", info->cpu_model[0] ? info->cpu_model : "unknown");
    fprintf(out, "  %-22s %d online, %d in affinity mask\n", "cores", info->cpus_online, info->cpus_affinity);
    if (info->cgroup_cpu_quota > 0)
        fprintf(out, "  %-22s %.2f cores\n", "cgroup CPU quota", info->cgroup_cpu_quota);
    else
        fprintf(out, "  %-22s none\n", "cgroup CPU quota");
    fprintf(out, "  %-22s %.2f\n", "usable cores", info->cpus_effective);
    fprintf(out, "  %-22s%s%s%s%s%s%s%s%s%s%s\n", "SIMD", info->sse4_2 ? " sse4_2" : "", info->avx ? " avx" : "",
            info->avx2 ? " avx2" : "", info->fma ? " fma" : "", info->f16c ? " f16c" : "",
            info->avx512f ? " avx512f" : "", info->avx512bw ? " avx512bw" : "",
            info->avx512_vnni ? " avx512_vnni" : "", info->avx_vnni ? " avx_vnni" : "", info->neon ? " neon" : "");
    print_mb(out, "RAM total", info->ram_total_mb, "unknown");
    print_mb(out, "RAM available", info->ram_available_mb, "unknown");
    if (info->cgroup_version)
        fprintf(out, "  %-22s v%d\n", "cgroup", info->cgroup_version);
    print_mb(out, "cgroup memory limit", info->cgroup_mem_limit_mb, "none");
    print_mb(out, "cgroup memory used", info->cgroup_mem_usage_mb, "unknown");
    print_mb(out, "memory usable", info->mem_effective_mb, "unknown");
    print_mb(out, "disk free", info->disk_free_mb, "unknown");
    fprintf(out, "  %-22s %s\n", "  (measured at)", info->disk_path[0] ? info->disk_path : "?");
}
