/* monk.c - the MONK's problems from their rules (monk.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "alloc.h"
#include "monk.h"
#include "rng.h"

const int da_monk_attr_values[DA_MONK_N_ATTR] = {3, 3, 2, 3, 4, 2};

static const int train_size[3] = {124, 169, 122};
#define MONK3_NOISY_LABELS 6

int da_monk_class(int problem, const int a[DA_MONK_N_ATTR])
{
    if (!a) {
        da_set_error(DA_EINVAL, "da_monk_class: NULL attributes");
        return -1;
    }
    if (problem < 1 || problem > 3) {
        da_set_error(DA_ERANGE, "da_monk_class: problem %d (need 1, 2 or 3)", problem);
        return -1;
    }
    for (int i = 0; i < DA_MONK_N_ATTR; i++)
        if (a[i] < 1 || a[i] > da_monk_attr_values[i]) {
            da_set_error(DA_ERANGE, "da_monk_class: a%d = %d outside 1..%d", i + 1, a[i],
                         da_monk_attr_values[i]);
            return -1;
        }
    if (problem == 1)
        return a[0] == a[1] || a[4] == 1;
    if (problem == 2) {
        int ones = 0;
        for (int i = 0; i < DA_MONK_N_ATTR; i++)
            ones += a[i] == 1;
        return ones == 2;
    }
    return (a[4] == 3 && a[3] == 1) || (a[4] != 4 && a[1] != 3);
}

static int set_alloc(da_monk_set *s, int n)
{
    s->n = n;
    s->x = da_calloc((size_t)n * DA_MONK_N_INPUTS, sizeof *s->x);
    s->y = da_malloc((size_t)n * sizeof *s->y);
    s->attr = da_malloc((size_t)n * DA_MONK_N_ATTR * sizeof *s->attr);
    return s->x && s->y && s->attr;
}

static void set_free(da_monk_set *s)
{
    da_free(s->x);
    da_free(s->y);
    da_free(s->attr);
}

/* row r of s: the attributes a, their one-hot code and class */
static void set_row(da_monk_set *s, int r, const int *a, int y)
{
    float *x = s->x + (size_t)r * DA_MONK_N_INPUTS;
    int off = 0;
    for (int i = 0; i < DA_MONK_N_ATTR; i++) {
        x[off + a[i] - 1] = 1;
        off += da_monk_attr_values[i];
        s->attr[r * DA_MONK_N_ATTR + i] = a[i];
    }
    s->y[r] = y;
}

/* the attributes of combination c in lexicographic order (a1 slowest) */
static void combination(int c, int *a)
{
    for (int i = DA_MONK_N_ATTR - 1; i >= 0; i--) {
        a[i] = 1 + c % da_monk_attr_values[i];
        c /= da_monk_attr_values[i];
    }
}

void da_monk_free(da_monk *m)
{
    if (!m)
        return;
    set_free(&m->train);
    set_free(&m->test);
    da_free(m);
}

da_monk *da_monk_new(int problem, unsigned long seed)
{
    if (problem < 1 || problem > 3) {
        da_set_error(DA_ERANGE, "da_monk_new: problem %d (need 1, 2 or 3)", problem);
        return NULL;
    }
    da_monk *m = da_calloc(1, sizeof *m);
    da_rng *rng = da_rng_new(seed);
    int n_train = train_size[problem - 1], order[DA_MONK_N_ALL], a[DA_MONK_N_ATTR];
    if (!m || !rng || !set_alloc(&m->train, n_train) || !set_alloc(&m->test, DA_MONK_N_ALL)) {
        da_monk_free(m);
        da_rng_free(rng);
        da_set_error(DA_ENOMEM, "da_monk_new: out of memory");
        return NULL;
    }
    m->problem = problem;
    for (int c = 0; c < DA_MONK_N_ALL; c++) {
        combination(c, a);
        set_row(&m->test, c, a, da_monk_class(problem, a));
        order[c] = c;
    }
    da_rng_shuffle(rng, order, DA_MONK_N_ALL);
    for (int r = 0; r < n_train; r++) {
        combination(order[r], a);
        set_row(&m->train, r, a, m->test.y[order[r]]);
    }
    if (problem == 3) { /* flip the labels of MONK3_NOISY_LABELS distinct training rows */
        int rows[122];
        for (int r = 0; r < n_train; r++)
            rows[r] = r;
        da_rng_shuffle(rng, rows, n_train);
        for (int i = 0; i < MONK3_NOISY_LABELS; i++)
            m->train.y[rows[i]] ^= 1;
    }
    da_rng_free(rng);
    return m;
}
