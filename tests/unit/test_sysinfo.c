/* Unit tests for sys/sysinfo: /proc/meminfo, /proc/self/cgroup and cgroup v1/v2 files read from a
 * fake root tree built here (so every branch is exercised on any machine), CPU flags from a fake
 * /proc/cpuinfo, the JSON override, and a probe of the real machine checked against sysconf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/models_dir.h"
#include "sys/sysinfo.h"

static char root[256];

static void put(const char *rel, const char *text)
{
    char p[512], d[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    snprintf(d, sizeof d, "%s", p);
    *strrchr(d, '/') = '\0';
    mcli_err err;
    assert_int_equal(models_dir_mkdirs(d, &err), MCLI_OK);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/mcli-test-sysinfo-%ld", (long)getpid());
    unsetenv("MCLI_SYSINFO_OVERRIDE");
    put("proc/meminfo", "MemTotal:        8000000 kB\nMemFree:         100 kB\nMemAvailable:    6000000 kB\n");
    put("proc/cpuinfo", "processor\t: 0\nmodel name\t: Test CPU 9000\n"
                        "flags\t\t: fpu sse4_2 avx avx2 fma f16c avx512f avx512_vnni\n\nprocessor\t: 1\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mcli_err err;
    mcli_status st = models_dir_rmtree(root, &err);
    return st == MCLI_OK ? 0 : -1;
}

static void meminfo_and_cpu_flags_are_parsed(void **state)
{
    (void)state;
    put("proc/self/cgroup", "0::/\n");
    mcli_sysinfo s;
    mcli_err err;
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &s, &err), MCLI_OK);
    assert_int_equal(s.ram_total_mb, 8000000 / 1024);
    assert_int_equal(s.ram_available_mb, 6000000 / 1024);
    assert_string_equal(s.cpu_model, "Test CPU 9000");
    assert_true(s.avx2 && s.fma && s.f16c && s.avx512f && s.avx512_vnni && s.sse4_2 && s.avx);
    assert_false(s.avx512bw);
    assert_false(s.avx_vnni);
    assert_int_equal(s.cgroup_mem_limit_mb, -1);
    assert_int_equal(s.mem_effective_mb, s.ram_available_mb);
}

static void cgroup_v2_limits_nested_take_the_smallest(void **state)
{
    (void)state;
    put("proc/self/cgroup", "0::/user.slice/app\n");
    put("sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
    put("sys/fs/cgroup/user.slice/memory.max", "1073741824\n"); /* 1024 MiB on the parent */
    put("sys/fs/cgroup/user.slice/app/memory.max", "max\n");
    put("sys/fs/cgroup/user.slice/app/memory.current", "209715200\n"); /* 200 MiB used */
    put("sys/fs/cgroup/user.slice/app/cpu.max", "150000 100000\n");
    mcli_sysinfo s;
    mcli_err err;
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &s, &err), MCLI_OK);
    assert_int_equal(s.cgroup_version, 2);
    assert_int_equal(s.cgroup_mem_limit_mb, 1024);
    assert_int_equal(s.cgroup_mem_usage_mb, 200);
    assert_int_equal(s.mem_effective_mb, 824);
    assert_true(s.cgroup_cpu_quota > 1.49 && s.cgroup_cpu_quota < 1.51);
    if (s.cpus_affinity >= 2)
        assert_true(s.cpus_effective > 1.49 && s.cpus_effective < 1.51);
    (void)teardown(NULL);
    (void)setup(NULL);
}

static void cgroup_v1_memory_and_cfs_quota(void **state)
{
    (void)state;
    put("proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n");
    put("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "536870912\n"); /* 512 MiB */
    put("sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes", "104857600\n"); /* 100 MiB */
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");   /* v1 "unlimited" */
    put("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
    put("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    mcli_sysinfo s;
    mcli_err err;
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &s, &err), MCLI_OK);
    assert_int_equal(s.cgroup_version, 1);
    assert_int_equal(s.cgroup_mem_limit_mb, 512);
    assert_int_equal(s.mem_effective_mb, 412);
    assert_true(s.cgroup_cpu_quota > 0.49 && s.cgroup_cpu_quota < 0.51);
    assert_true(s.cpus_effective < 0.51);
    (void)teardown(NULL);
    (void)setup(NULL);
}

static void cgroup_v1_without_quota_is_unlimited(void **state)
{
    (void)state;
    put("proc/self/cgroup", "4:memory:/\n3:cpu:/\n");
    put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
    put("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    mcli_sysinfo s;
    mcli_err err;
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &s, &err), MCLI_OK);
    assert_int_equal(s.cgroup_mem_limit_mb, -1);
    assert_true(s.cgroup_cpu_quota == 0);
    (void)teardown(NULL);
    (void)setup(NULL);
}

static void hostile_cgroup_files_do_not_crash(void **state)
{
    (void)state;
    put("proc/self/cgroup", "garbage without colons\n::\n0::relative\n99999999999999999999:memory:/x\n");
    put("sys/fs/cgroup/cgroup.controllers", "\n");
    put("sys/fs/cgroup/memory.max", "99999999999999999999999999\n");
    put("sys/fs/cgroup/cpu.max", "100000 0\n");
    put("proc/meminfo", "MemTotal: 99999999999999999999999 kB\nMemAvailable: -5 kB\n");
    mcli_sysinfo s;
    mcli_err err;
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &s, &err), MCLI_OK);
    assert_int_equal(s.ram_total_mb, -1);
    assert_int_equal(s.ram_available_mb, -1);
    assert_true(s.cgroup_cpu_quota == 0);
    (void)teardown(NULL);
    (void)setup(NULL);
}

static void override_replaces_fields_and_rederives(void **state)
{
    (void)state;
    put("proc/self/cgroup", "0::/\n");
    setenv("MCLI_SYSINFO_OVERRIDE", "{\"ram_available_mb\": 1500, \"disk_free_mb\": 42, \"avx2\": false}", 1);
    mcli_sysinfo s;
    mcli_err err;
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &s, &err), MCLI_OK);
    assert_true(s.overridden);
    assert_int_equal(s.ram_available_mb, 1500);
    assert_int_equal(s.mem_effective_mb, 1500);
    assert_int_equal(s.disk_free_mb, 42);
    assert_false(s.avx2);
    setenv("MCLI_SYSINFO_OVERRIDE", "{\"no_such_field\": 1}", 1);
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &s, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "no_such_field"));
    setenv("MCLI_SYSINFO_OVERRIDE", "[1,2", 1);
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &s, &err), MCLI_ERR_INVALID_ARG);
    unsetenv("MCLI_SYSINFO_OVERRIDE");
}

static void json_round_trips_through_the_override(void **state)
{
    (void)state;
    put("proc/self/cgroup", "0::/\n");
    mcli_sysinfo a, b;
    mcli_err err;
    assert_int_equal(sysinfo_probe_root(root, "/tmp", &a, &err), MCLI_OK);
    char *js = sysinfo_to_json(&a);
    assert_non_null(js);
    memset(&b, 0, sizeof b);
    assert_int_equal(sysinfo_apply_override(&b, js, &err), MCLI_OK);
    free(js);
    assert_int_equal(b.ram_total_mb, a.ram_total_mb);
    assert_int_equal(b.disk_free_mb, a.disk_free_mb);
    assert_string_equal(b.cpu_model, a.cpu_model);
    assert_int_equal(b.avx512_vnni, a.avx512_vnni);
}

static void real_machine_probe_matches_sysconf(void **state)
{
    (void)state;
    mcli_sysinfo s;
    mcli_err err;
    assert_int_equal(sysinfo_probe("/nonexistent/models/dir", &s, &err), MCLI_OK);
    assert_int_equal(s.cpus_online, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(s.cpus_affinity >= 1 && s.cpus_affinity <= s.cpus_online);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    int64_t total = (int64_t)pages * psz / (1024 * 1024);
    assert_true(s.ram_total_mb > total - 64 && s.ram_total_mb < total + 64);
    assert_true(s.disk_free_mb >= 0);
    assert_string_equal(s.disk_path, "/"); /* nearest existing parent of the missing dir */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meminfo_and_cpu_flags_are_parsed),
        cmocka_unit_test(cgroup_v2_limits_nested_take_the_smallest),
        cmocka_unit_test(cgroup_v1_memory_and_cfs_quota),
        cmocka_unit_test(cgroup_v1_without_quota_is_unlimited),
        cmocka_unit_test(hostile_cgroup_files_do_not_crash),
        cmocka_unit_test(override_replaces_fields_and_rederives),
        cmocka_unit_test(json_round_trips_through_the_override),
        cmocka_unit_test(real_machine_probe_matches_sysconf),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
