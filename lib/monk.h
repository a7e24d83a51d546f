/* monk.h - the MONK's problems (Thrun et al., "The MONK's Problems: A Performance
 * Comparison of Different Learning Algorithms", CMU-CS-91-197, 1991), generated from
 * their published rules (DESIGN.md §7).
 *
 * A robot has six attributes with 3, 3, 2, 3, 4, 2 values (a1..a6, each numbered from
 * 1), 432 combinations in all. The class (1 = the concept holds) of each problem:
 *   MONK-1: a1 = a2 or a5 = 1
 *   MONK-2: exactly two of the six attributes have their first value (= 1)
 *   MONK-3: (a5 = 3 and a4 = 1) or (a5 != 4 and a2 != 3)
 * Training sets: 124 / 169 / 122 distinct combinations drawn by seed (the sizes of the
 * original training sets), MONK-3 with 5% label noise (6 of its 122 training labels
 * flipped, the noise level of the original); test set: all 432 combinations in
 * lexicographic order (a1 slowest) with their true classes.
 * Inputs are one-hot: 3 + 3 + 2 + 3 + 4 + 2 = 17 values in {0, 1} per row.
 *
 * Ownership: da_monk_new allocates, da_monk_free frees (NULL is a no-op). */
#ifndef DA_MONK_H
#define DA_MONK_H

#define DA_MONK_N_ATTR 6
#define DA_MONK_N_INPUTS 17
#define DA_MONK_N_ALL 432

/* values per attribute: 3, 3, 2, 3, 4, 2 */
extern const int da_monk_attr_values[DA_MONK_N_ATTR];

/* The class (0 or 1) of attributes a[6] (a[i] in 1..values) under problem 1, 2 or 3;
 * -1 with da_last_error() set (DA_ERANGE) for a bad problem or attribute. */
int da_monk_class(int problem, const int a[DA_MONK_N_ATTR]);

typedef struct {
    int n;
    float *x;   /* [n][17] one-hot inputs */
    int *y;     /* [n] classes (training rows may carry label noise) */
    int *attr;  /* [n][6] attribute values */
} da_monk_set;

typedef struct {
    int problem;
    da_monk_set train, test;
} da_monk;

/* problem 1, 2 or 3; NULL on error (DA_ERANGE, DA_ENOMEM). */
da_monk *da_monk_new(int problem, unsigned long seed);
void da_monk_free(da_monk *m);

#endif
