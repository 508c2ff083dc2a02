/* service_internal.h - what service_routes.c shares with service_http.c. Not for use elsewhere.
 *
 * Download jobs (one per model key being fetched, kept after they end so /lightweight/status can
 * report them; at most SVC_MAX_JOBS finished ones are kept):
 *
 *   POST .../download --job_start--> RUNNING --hub_pull ok--> DONE
 *                                       |  progress events bump seq (waiters wake)
 *                                       +--hub_pull failed--> FAILED (err kept)
 *
 * All job fields and the job list are guarded by service.lock; dl_cond is broadcast whenever a
 * job changes. A job is reference counted (the list holds none: the worker thread and each
 * waiting request or stream do) and freed at refs == 0 once it has left the list.
 */
#ifndef MCLI_SERVER_SERVICE_INTERNAL_H
#define MCLI_SERVER_SERVICE_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "hub/catalog.h"
#include "sched/model_cache.h"
#include "server/http.h"
#include "server/service.h"
#include "store/registry.h"

#define SVC_MAX_JOBS 16

typedef enum { JOB_RUNNING, JOB_DONE, JOB_FAILED } svc_job_state;

typedef struct svc_job {
    int refs;
    bool listed;
    char key[256];          /* what the client asked for */
    char repo[200];         /* what is fetched */
    char revision[128];
    char endpoint[512];     /* "" = $HF_ENDPOINT or the default hub */
    svc_job_state state;
    char file[256];
    size_t index, n_files;
    int64_t file_done, file_total, total_done, total_bytes;
    double bytes_per_sec;
    char dir[4096];         /* the model directory when DONE */
    mcli_err err;           /* when FAILED */
    unsigned seq;           /* bumped at every change */
    time_t started;
    struct service *svc;
    struct svc_job *next;
} svc_job;

struct service {
    char host[256];
    int port;
    char models_dir[4096];
    char db_path[4096];
    int lightweight_port;
    bool access_log;
    char api_key[256];        /* "" = no authentication */
    time_t started;

    mcli_registry *reg;
    model_cache *cache;
    hub_catalog *catalog;     /* NULL if no catalog could be loaded (reported by /lightweight/models) */
    char catalog_error[MCLI_ERR_MSG_MAX];

    pthread_mutex_t lock;     /* guards everything below */
    pthread_cond_t dl_cond;
    svc_job *jobs;
    int active_jobs;          /* worker threads still running */
    bool stopping;            /* service_free in progress: downloads cancel */
    server *lw;               /* the in-process lightweight server, or NULL; immutable once set */
    int lw_port;
    pthread_mutex_t lw_lock;  /* serialises /lightweight/start (held while models load) */

    struct MHD_Daemon *daemon;
    atomic_int bound_port;    /* set once listening; read by request threads */
};

#endif
