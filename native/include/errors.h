/* Error codes shared by the whole native core: every function that can fail returns SYN_OK or one
 * of these (always negative). Declaration-only, read into ffi.cdef; synapse_native.errors turns
 * them into exceptions. */
#ifndef SYN_ERRORS_H
#define SYN_ERRORS_H

#define SYN_OK        0
#define SYN_EFULL     -1 /* no room for the record now; nothing was written */
#define SYN_EEMPTY    -2 /* no record to read */
#define SYN_ETOOBIG   -3 /* the record can never fit (longer than the maximum record) */
#define SYN_ETOOSMALL -4 /* the caller's buffer cannot hold the next record; nothing consumed */
#define SYN_EINVAL    -5 /* an argument is out of range */
#define SYN_ENOMEM    -6 /* an allocation failed */
#define SYN_ESYS      -7 /* a system call failed; errno tells which */
#define SYN_ECLOSED   -8 /* the pump or stream is closed */
#define SYN_ENOCLIENT -9 /* no client has that id */

#endif
