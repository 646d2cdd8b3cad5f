/* From raw sums to the summary record. Everything here runs once per call, in double. */
#include <math.h>
#include <string.h>

#include "stats_record.h"

/* Central moments from moments about the pivot: with a pivot near the mean, mean_d is small and
 * these differences lose little (the pivot exists for the case mean >> std). */
static void syn_central_moments(const syn_stats_raw *raw, double n, double *mean_d, double *m2,
                                double *m3, double *m4) {
    double md = raw->sum_d1 / n;
    double e2 = raw->sum_d2 / n;
    double e3 = raw->sum_d3 / n;
    double e4 = raw->sum_d4 / n;
    double md2 = md * md;
    *mean_d = md;
    *m2 = fmax(e2 - md2, 0.0);
    *m3 = e3 - 3.0 * md * e2 + 2.0 * md2 * md;
    *m4 = fmax(e4 - 4.0 * md * e3 + 6.0 * md2 * e2 - 3.0 * md2 * md2, 0.0);
}

void syn_stats_finish(const syn_stats_raw *raw, uint32_t site_id, uint32_t flags, void *record) {
    syn_stats_record r;
    memset(&r, 0, sizeof r);
    r.site_id = site_id;
    r.flags = flags;
    r.count = raw->count;
    r.nan_count = raw->nan_count;
    r.inf_count = raw->inf_count;
    r.threshold = raw->threshold;
    if (raw->finite_count == 0) {
        float nan = NAN;
        r.mean = r.std = r.rms = r.min = r.max = r.mean_abs = nan;
        r.skewness = r.kurtosis = r.frac_zero = r.frac_above = nan;
        memcpy(record, &r, sizeof r);
        return;
    }
    double n = (double)raw->finite_count;
    double mean_d, m2, m3, m4;
    syn_central_moments(raw, n, &mean_d, &m2, &m3, &m4);
    double mean = raw->pivot + mean_d;
    double std = sqrt(m2);
    r.mean = (float)mean;
    r.std = (float)std;
    r.rms = (float)hypot(mean, std); /* sqrt(E[x^2]) without the overflow of squaring */
    r.min = raw->min;
    r.max = raw->max;
    r.mean_abs = (float)(raw->sum_abs / n);
    /* A constant tensor has no shape to speak of: report 0 rather than 0/0. */
    r.skewness = m2 > 0.0 ? (float)(m3 / (m2 * std)) : 0.0f;
    r.kurtosis = m2 > 0.0 ? (float)(m4 / (m2 * m2) - 3.0) : 0.0f;
    r.frac_zero = (float)((double)raw->zero_count / n);
    r.frac_above = (float)((double)raw->above_count / n);
    for (int i = 0; i < SYN_STATS_HIST_BINS; i++)
        r.hist[i] = (float)((double)raw->hist[i] / n);
    memcpy(record, &r, sizeof r);
}
