/* Pump threads start with all signals blocked (see thread.h). */
#include "thread.h"

#include <signal.h>

int syn_start_thread(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg) {
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous); /* the new thread inherits this mask */
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (rc == 0) {
        pthread_setname_np(*thread, name); /* cosmetic: failure is harmless */
    }
    return rc;
}
