/* Neuron selection: the values above a threshold, capped to the k largest, in index order.
 *
 * When more than k are above, a size-k min-heap (kept in out_val, which is free until the end)
 * finds the k-th largest value v in O(n log k); a last pass then writes, in index order, every
 * value > v and as many values == v as the cap still allows, lowest indices first. */
#include "../include/stats.h"

static void syn_sift_down(float *h, uint32_t n, uint32_t i) {
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        if (l < n && h[l] < h[m])
            m = l;
        if (l + 1 < n && h[l + 1] < h[m])
            m = l + 1;
        if (m == i)
            return;
        float t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The k-th largest of the values > threshold (there are more than k >= 1 of them). */
static float syn_kth_largest(const float *values, uint64_t n, float threshold, uint32_t k,
                             float *heap) {
    uint32_t size = 0;
    for (uint64_t i = 0; i < n; i++) {
        float v = values[i];
        if (!(v > threshold))
            continue;
        if (size < k) {
            heap[size++] = v;
            if (size == k) {
                for (uint32_t j = k / 2; j-- > 0;)
                    syn_sift_down(heap, k, j);
            }
        } else if (v > heap[0]) {
            heap[0] = v;
            syn_sift_down(heap, k, 0);
        }
    }
    return heap[0];
}

uint64_t syn_stats_select(const float *values, uint64_t n, float threshold, uint32_t k,
                          uint32_t *out_idx, float *out_val, uint32_t *n_written) {
    uint64_t above = 0;
    for (uint64_t i = 0; i < n; i++)
        above += values[i] > threshold;
    *n_written = 0;
    if (above == 0 || k == 0)
        return above;
    float cut = threshold; /* write values > cut, plus `ties` values == cut */
    uint64_t ties = 0;
    if (above > k) {
        cut = syn_kth_largest(values, n, threshold, k, out_val);
        uint64_t greater = 0;
        for (uint64_t i = 0; i < n; i++)
            greater += values[i] > cut;
        ties = k - greater;
    }
    uint32_t w = 0;
    for (uint64_t i = 0; i < n; i++) {
        float v = values[i];
        if (v > cut || (ties && v == cut)) {
            if (!(v > cut))
                ties--;
            out_idx[w] = (uint32_t)i;
            out_val[w] = v;
            w++;
        }
    }
    *n_written = w;
    return above;
}
