/* Why the core uses open-addressing hash indexes rather than sorted runs.
 *
 * Measures, for N int64 keys (with duplicates, like a join column):
 *   probe: hash-table probe (as in _core.pyx's Index) vs binary search in a
 *          sorted array (datafrog's lookup), for random present keys;
 *   build: inserting rows one by one into the hash index vs sorting once
 *          (semi-naive rounds and per-request overlays append a few rows at
 *          a time, which for sorted runs means merging);
 *   append: adding 16 rows to a large indexed relation (what a per-request
 *          overlay or a small semi-naive delta does): hash insert vs
 *          re-merging the sorted run.
 * Build: gcc -O3 -o /tmp/index_choice index_choice.c && /tmp/index_choice
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t mix(uint64_t h, uint64_t v) { v *= 0x9E3779B97F4A7C15ULL; v ^= v >> 32; h = (h ^ v) * 0xBF58476D1CE4E5B9ULL; h ^= h >> 29; return h; }
static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

typedef struct { int32_t *slots; int64_t mask; int64_t *gkey; int32_t *ghead, *gtail; int64_t ng; int32_t *nxt; } Hx;

static void hx_init(Hx *h, int64_t n) {
    int64_t cap = 16; while (cap < 2 * n) cap *= 2;
    h->slots = calloc(cap, 4); h->mask = cap - 1; h->gkey = malloc(8 * n); h->ghead = malloc(4 * n); h->gtail = malloc(4 * n); h->nxt = malloc(4 * n); h->ng = 0;
}
static void hx_add(Hx *h, int64_t key, int32_t row) {
    int64_t i = mix(0, key) & h->mask;
    while (h->slots[i]) { int32_t g = h->slots[i] - 1; if (h->gkey[g] == key) { h->nxt[h->gtail[g]] = row; h->gtail[g] = row; h->nxt[row] = -1; return; } i = (i + 1) & h->mask; }
    h->gkey[h->ng] = key; h->ghead[h->ng] = h->gtail[h->ng] = row; h->nxt[row] = -1; h->slots[i] = ++h->ng;
}
static int32_t hx_find(Hx *h, int64_t key) {
    int64_t i = mix(0, key) & h->mask;
    while (h->slots[i]) { int32_t g = h->slots[i] - 1; if (h->gkey[g] == key) return h->ghead[g]; i = (i + 1) & h->mask; }
    return -1;
}
static int cmp64(const void *a, const void *b) { int64_t x = *(const int64_t *)a, y = *(const int64_t *)b; return (x > y) - (x < y); }
static int64_t lower_bound(const int64_t *a, int64_t n, int64_t key) { int64_t lo = 0, hi = n; while (lo < hi) { int64_t m = (lo + hi) / 2; if (a[m] < key) lo = m + 1; else hi = m; } return lo; }

int main(void) {
    int64_t sizes[] = {10000, 100000, 1000000, 4000000};
    printf("| rows | hash probe ns | sorted probe ns | hash build ns/row | sort build ns/row | append 16 rows: hash us | sorted (merge) us |\n|---|---|---|---|---|---|---|\n");
    for (int s = 0; s < 4; s++) {
        int64_t n = sizes[s], distinct = n / 4 + 1, probes = 2000000;
        int64_t *keys = malloc(8 * (n + 16)), *sorted = malloc(8 * (n + 16)), *tmp = malloc(8 * (n + 16));
        for (int64_t i = 0; i < n; i++) keys[i] = (int64_t)(next() % distinct) * 2 + 1;
        Hx h; double t0 = now(); hx_init(&h, n + 16); for (int64_t i = 0; i < n; i++) hx_add(&h, keys[i], (int32_t)i); double hb = now() - t0;
        memcpy(sorted, keys, 8 * n); t0 = now(); qsort(sorted, n, 8, cmp64); double sb = now() - t0;
        int64_t *q = malloc(8 * probes); for (int64_t i = 0; i < probes; i++) q[i] = keys[next() % n];
        volatile int64_t sink = 0;
        t0 = now(); for (int64_t i = 0; i < probes; i++) sink += hx_find(&h, q[i]); double hp = now() - t0;
        t0 = now(); for (int64_t i = 0; i < probes; i++) sink += lower_bound(sorted, n, q[i]); double sp = now() - t0;
        int64_t add[16]; for (int i = 0; i < 16; i++) add[i] = (int64_t)(next() % distinct) * 2 + 1;
        t0 = now(); for (int i = 0; i < 16; i++) hx_add(&h, add[i], (int32_t)(n + i)); double ha = now() - t0;
        qsort(add, 16, 8, cmp64);
        t0 = now(); { int64_t i = 0, j = 0, k = 0; while (i < n || j < 16) tmp[k++] = (j >= 16 || (i < n && sorted[i] <= add[j])) ? sorted[i++] : add[j++]; } double sa = now() - t0;
        printf("| %lld | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f |\n", (long long)n, hp / probes * 1e9, sp / probes * 1e9, hb / n * 1e9, sb / n * 1e9, ha * 1e6, sa * 1e6);
        free(keys); free(sorted); free(tmp); free(q);
    }
    return 0;
}
