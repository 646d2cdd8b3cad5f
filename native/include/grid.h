/* Kernels of the desktop app's busy tick: reading a run of sparse frames and placing their points.
 *
 * Declaration-only: native/_cffi_build.py reads this file into ffi.cdef. The Python side is
 * synapse_native/grid.py, the only caller.
 *
 * A busy tick receives a whole training step at once: one SPARSE_ACTIVATIONS frame per site
 * (about a hundred) and tens of thousands of neurons. Per frame and per neuron, Python costs
 * more than the data; these two loops do that part in one call each.
 */
#ifndef SYN_GRID_H
#define SYN_GRID_H

#include <stddef.h>
#include <stdint.h>

#define SYN_MSG_SPARSE_ACTIVATIONS 4
#define SYN_SPARSE_FIXED_SIZE      16 /* site_id, threshold, n, n_above */

/* The fields of one SPARSE_ACTIVATIONS frame (40 bytes; numpy mirrors it). */
typedef struct {
    uint64_t timestamp_ns;
    uint32_t seq;
    uint32_t step;
    uint32_t rank;
    uint32_t site_id;
    uint32_t n; /* neurons carried: indices at byte 48 of the frame, values after them */
    uint32_t n_above;
    float threshold;
    uint32_t reserved;
} syn_sparse_head;

/* Checks n_frames SPARSE_ACTIVATIONS frames laid end to end in buf (frame i is lengths[i]
 * bytes) as the Python codec does: magic, version, type, payload length (at most max_payload,
 * exactly 16 + 8 n, and the whole frame), n <= n_above, indices strictly ascending. Fills
 * heads[i] for each good frame; returns how many leading frames were good (the caller lets the
 * codec decode the first bad one, so that it says what is wrong). */
size_t syn_sparse_scan(const uint8_t *buf, size_t len, const uint64_t *lengths, size_t n_frames,
                       uint32_t max_payload, syn_sparse_head *heads);

/* Where a site's neurons go: neuron i is at row i / cols, column i % cols of its grid. 32 bytes;
 * numpy mirrors it. */
typedef struct {
    float x, y, z;  /* world position of the centre of neuron 0 (for the caller's shader) */
    uint32_t cols;  /* grid columns, at least 1 */
    uint32_t limit; /* neurons inside the grid (rows x cols: its block in the atlas) */
    uint32_t reserved;
    uint64_t corner; /* flat index in the atlas of the site's top-left texel */
} syn_grid_site;

/* Places the points of n sites. Site k is table[sites[k]]; its counts[k] points are the next
 * counts[k] entries of indices and values (the sites' points concatenated in order), measured
 * against thresholds[k] (> 0).
 *
 * A point's intensity is log2(value / threshold) / 3 clamped to 0.05..1 (NaN counts as 1; the
 * log2 is within a unit in the last place of log2f's).
 * The m-th point of site s inside its grid is written to rows[2 * (s * capacity + m)]: its
 * neuron index (as a float: exact below 2^24) and intensity; its atlas texel (corner + row *
 * atlas_width + column) gets (uint8) (255 * intensity). Slots from the site's new count up to
 * held[s] (its count before) get intensity -1 (unused), and held[s] becomes the new count.
 *
 * The atlas halves once per new step: fades counts the halvings so far, and faded[s] those site
 * s's block has had. Before its points are written, the block is halved fades - faded[s] times
 * (cleared from 8 on: a byte is 0 by then) and faded[s] becomes fades.
 *
 * indices and values hold n_points entries, rows n_slots slots of 2 floats, held and faded
 * n_table counts, the atlas atlas_size bytes. Returns the number of points placed, or -5
 * (SYN_EINVAL) with nothing written when the counts do not add up to n_points, a site is outside
 * the table, a site's points (or held[s]) exceed capacity, its slots lie outside rows, or its grid
 * lies outside the atlas (or is wider than it). */
int64_t syn_grid_place(const syn_grid_site *table, size_t n_table, const int64_t *sites,
                       const int64_t *counts, const float *thresholds, size_t n,
                       const uint32_t *indices, const float *values, size_t n_points, float *rows,
                       size_t capacity, size_t n_slots, int64_t *held, uint8_t *atlas,
                       size_t atlas_width, size_t atlas_size, int64_t *faded, int64_t fades);

#endif
