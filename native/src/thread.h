/* Starting a pump thread. */
#ifndef SYN_THREAD_H
#define SYN_THREAD_H

#include <pthread.h>

/* Starts fn(arg) with every signal blocked, so that signals meant for the host process (for
 * instance SIGINT for Python) are never delivered to a pump thread, and names it (at most 15
 * characters; shown by top -H, perf and gdb). Returns 0 or an errno. */
int syn_start_thread(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg);

#endif
