/* A tiny persistent thread pool for the statistics kernel.
 *
 * Workers start on first use and then sleep on a condition variable between calls, so a call
 * pays one broadcast instead of thread creation. The caller and the workers claim tasks one at a
 * time from a shared counter, so a worker that wakes up late (both cores busy with torch, say)
 * only means that the caller does more of the tasks: the call is never slower than running them
 * all on the caller, and the caller never waits for a worker that has not claimed anything.
 * Which thread runs a task does not change its result.
 *
 * One call uses the pool at a time; a concurrent caller does not wait for it but runs its tasks
 * itself (a stalled training step is worse than a slower summary). Workers block every signal so
 * that signals keep going to the threads that expect them (Python handles them in its main
 * thread). After fork() the child has no workers: the child handler forgets them and they are
 * started again on demand.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "stats_internal.h"

typedef struct {
    pthread_mutex_t busy; /* held by the call that owns the pool */
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t work;  /* a job was posted */
    pthread_cond_t done;  /* the last task of the job finished */
    uint32_t started;     /* workers running, indices 1..started */
    uint64_t generation;  /* bumped once per job */
    syn_task task;
    void *arg;
    uint32_t n_tasks;
    uint32_t next;     /* next task to claim */
    uint32_t finished; /* tasks completed */
    uint32_t helpers;  /* workers 1..helpers may claim tasks of this job */
    uint32_t joined;   /* workers that claimed at least one task */
} syn_pool;

static syn_pool pool = {.busy = PTHREAD_MUTEX_INITIALIZER,
                        .mu = PTHREAD_MUTEX_INITIALIZER,
                        .work = PTHREAD_COND_INITIALIZER,
                        .done = PTHREAD_COND_INITIALIZER};
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* The generation each worker was started at: a worker must not read pool.generation itself on
 * start, or a job posted before it first takes mu would look already seen. */
static uint64_t start_generation[SYN_STATS_MAX_THREADS];

static void syn_pool_after_fork_child(void) {
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.work, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = 0;
}

static void syn_pool_register_atfork(void) {
    pthread_atfork(NULL, NULL, syn_pool_after_fork_child);
}

/* Claims and runs tasks until none is left. Called and returns with mu held. */
static uint32_t syn_pool_claim_all(void) {
    uint32_t ran = 0;
    while (pool.next < pool.n_tasks) {
        uint32_t i = pool.next++;
        syn_task task = pool.task;
        void *arg = pool.arg;
        pthread_mutex_unlock(&pool.mu);
        task(arg, i);
        pthread_mutex_lock(&pool.mu);
        ran++;
        if (++pool.finished == pool.n_tasks)
            pthread_cond_signal(&pool.done);
    }
    return ran;
}

static void *syn_pool_worker(void *p) {
    uint32_t index = (uint32_t)(uintptr_t)p;
    uint64_t seen = start_generation[index];
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.generation == seen)
            pthread_cond_wait(&pool.work, &pool.mu);
        seen = pool.generation;
        /* A late worker finds every task claimed and never touches the (finished) job. */
        if (index <= pool.helpers && syn_pool_claim_all())
            pool.joined++;
    }
    return NULL;
}

/* Starts workers up to index n - 1; returns how many are running. Called with busy held. */
static uint32_t syn_pool_grow(uint32_t n) {
    if (n > SYN_STATS_MAX_THREADS)
        n = SYN_STATS_MAX_THREADS;
    if (pool.started + 1 >= n)
        return pool.started;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (pool.started + 1 < n) {
        pthread_t t;
        uintptr_t index = pool.started + 1;
        start_generation[index] = pool.generation; /* stable: only busy's holder changes it */
        if (pthread_create(&t, &attr, syn_pool_worker, (void *)index) != 0)
            break;
        pool.started++;
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool.started;
}

uint32_t syn_pool_run(syn_task task, void *arg, uint32_t n_tasks, uint32_t threads) {
    uint32_t helpers = 0;
    if (threads > 1 && n_tasks > 1) {
        pthread_once(&atfork_once, syn_pool_register_atfork);
        if (pthread_mutex_trylock(&pool.busy) == 0) {
            helpers = syn_pool_grow(threads);
            if (helpers > threads - 1)
                helpers = threads - 1;
            if (helpers == 0)
                pthread_mutex_unlock(&pool.busy);
        }
    }
    if (helpers == 0) {
        for (uint32_t i = 0; i < n_tasks; i++)
            task(arg, i);
        return 1;
    }
    pthread_mutex_lock(&pool.mu);
    pool.task = task;
    pool.arg = arg;
    pool.n_tasks = n_tasks;
    pool.next = pool.finished = pool.joined = 0;
    pool.helpers = helpers;
    pool.generation++;
    pthread_cond_broadcast(&pool.work);
    syn_pool_claim_all();
    while (pool.finished < pool.n_tasks)
        pthread_cond_wait(&pool.done, &pool.mu);
    uint32_t used = 1 + pool.joined;
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.busy);
    return used;
}
