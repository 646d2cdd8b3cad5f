/* The 336-byte summary record of the wire format (LAYER_SUMMARY_BATCH, docs/PROTOCOL.md), as a C
 * struct whose offsets are checked at compile time against the byte layout the codec uses. */
#ifndef SYN_STATS_RECORD_H
#define SYN_STATS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "../include/stats.h"

/* The wire is little-endian; the struct is written with memcpy, so the host must be too. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "syn_stats_record is written in host byte order, which must be little-endian"
#endif

typedef struct {
    uint32_t site_id;
    uint32_t flags;
    uint64_t count;
    uint64_t nan_count;
    uint64_t inf_count;
    float mean;
    float std;
    float rms;
    float min;
    float max;
    float mean_abs;
    float skewness;
    float kurtosis; /* excess */
    float frac_zero;
    float frac_above;
    float threshold;
    uint32_t reserved;
    float hist[SYN_STATS_HIST_BINS]; /* fractions of the finite elements */
} syn_stats_record;

_Static_assert(offsetof(syn_stats_record, count) == 8, "record layout");
_Static_assert(offsetof(syn_stats_record, nan_count) == 16, "record layout");
_Static_assert(offsetof(syn_stats_record, inf_count) == 24, "record layout");
_Static_assert(offsetof(syn_stats_record, mean) == 32, "record layout");
_Static_assert(offsetof(syn_stats_record, std) == 36, "record layout");
_Static_assert(offsetof(syn_stats_record, rms) == 40, "record layout");
_Static_assert(offsetof(syn_stats_record, min) == 44, "record layout");
_Static_assert(offsetof(syn_stats_record, max) == 48, "record layout");
_Static_assert(offsetof(syn_stats_record, mean_abs) == 52, "record layout");
_Static_assert(offsetof(syn_stats_record, skewness) == 56, "record layout");
_Static_assert(offsetof(syn_stats_record, kurtosis) == 60, "record layout");
_Static_assert(offsetof(syn_stats_record, frac_zero) == 64, "record layout");
_Static_assert(offsetof(syn_stats_record, frac_above) == 68, "record layout");
_Static_assert(offsetof(syn_stats_record, threshold) == 72, "record layout");
_Static_assert(offsetof(syn_stats_record, reserved) == 76, "record layout");
_Static_assert(offsetof(syn_stats_record, hist) == 80, "record layout");
_Static_assert(sizeof(syn_stats_record) == SYN_STATS_RECORD_BYTES, "record size");

#endif
