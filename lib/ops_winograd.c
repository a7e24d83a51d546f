/* ops_winograd.c - Winograd minimal filtering for F32 stride-1 convolutions with square
 * r x r kernels (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks",
 * eq. 8): F(m x m, r x r) with input tiles t x t, t = m + r - 1 = WINO_T, so F(2x2, 5x5)
 * and F(4x4, 3x3) come from the same code. The matrices are built at run time from the
 * interpolation points (Toom-Cook, see da_winograd_matrices).
 *
 * Forward, per output tile (m x m outputs at tile row a, tile column b, input rows and
 * columns from a*m - pad and b*m - pad):
 *   U = G w[o][c] G^T [t][t],  V = B^T d[c] B [t][t],  Y[o] = A^T [sum_c U (.) V] A [m][m];
 * the sum over c is, for each of the t*t positions xi, one GEMM over a block of tiles:
 *   M[xi] [O][tiles] = U[xi] [O][C] x V[xi] [C][tiles].
 * Backward, the exact adjoints of the same bilinear map, with Z = A dY A^T per (o, tile)
 * (dY padded with zeros past Ho, Wo):
 *   dU[xi] [O][C]   = Z[xi] [O][tiles] x V[xi]^T,  dW[o][c] = G^T dU[o][c] G;
 *   dV[xi] [C][tiles] = U[xi]^T x Z[xi],           dX tile = B dV B^T, scatter-added.
 * V is recomputed in the backward rather than saved (9x the input for m = 2: a block's V
 * recomputed in cache costs less than streaming the saved one back from memory).
 *
 * A chunk of images (ops_conv.c) runs in blocks of bh whole tile rows (>= WINO_BLOCK_TILES
 * tiles, across its images), so that a block's V [t*t][C][ld] and M [t*t][O][ld] stay in
 * the L2 cache from the transforms through the 36 GEMMs (which read them directly) and
 * back. Columns: tile row q of the block, then tile column b. An input plane is zero-padded
 * and split by column phase once per chunk, xq [Hp][m][Wq] with
 * xq[h][ph][q] = x[h - pad][q*m + ph - pad], so that column b*m + j of tile column b is
 * xq[.][j % m][b + j / m]: contiguous in b, and the transforms run over blocks of LANES
 * tile columns. */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "ops_conv_impl.h"

#define WINO_T 6            /* input tile: points 0, +-1, +-2 and infinity */
#define WINO_BLOCK_TILES 48 /* tiles of a block: whole tile rows, at least this many */
#define WINO_MIN_C 8        /* DA_CONV_AUTO: Winograd from this many input channels */
#define WINO_MAX_M (WINO_T - 2) /* m for the smallest kernel, r = 3 */

/* the transform kernels: an x86-64-v3 (AVX2 + FMA) clone picked at load time */
#if defined(__x86_64__) && defined(__GNUC__)
#define WINO_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WINO_CLONES
#endif

/* the nonzeros of one row (or column) of a transform matrix: sum_q c[q] in[idx[q]] */
typedef struct {
    int n, idx[WINO_T];
    float c[WINO_T];
} wino_row;

struct wino_plan {
    int m, r, t, tt;   /* output tile m x m, kernel r x r, input tile t x t, tt = t*t */
    int th, tw;        /* tile rows and columns of one image */
    int Hp, Wq, L;     /* padded input plane xq [Hp][m][Wq], L = m*Wq floats a row */
    int bh;            /* tile rows of a block */
    int ld;            /* columns of V and M: bh*tw + slack */
    float BT[WINO_MAX_T * WINO_MAX_T];             /* [t][t] */
    wino_row bt_row[WINO_T], bt_col[WINO_T];       /* B^T by rows, by columns */
    wino_row at_row[WINO_MAX_M], at_col[WINO_T];   /* A^T [m][t] by rows, by columns */
    double G[WINO_MAX_T * WINO_MAX_T];             /* [t][r] */
    float *U;          /* [tt][O][C] transformed weights */
};

/* coefficients of prod_{l < n, l != skip} (x - a_l) into c [n + 1], lowest degree first */
static void poly_from_roots(const double *a, int n, int skip, double *c)
{
    int deg = 0;
    c[0] = 1;
    for (int i = 1; i <= n; i++)
        c[i] = 0;
    for (int l = 0; l < n; l++) {
        if (l == skip)
            continue;
        for (int k = deg + 1; k > 0; k--)
            c[k] = c[k - 1] - a[l] * c[k];
        c[0] *= -a[l];
        deg++;
    }
}

/* Linear convolution s = h * g (h of m taps, g of r) evaluated at the n = t - 1 finite
 * points a_j and at infinity (the leading coefficient), then interpolated:
 * s = sum_j s(a_j) N_j(x) / f_j + s_lead M(x), N_j = prod_{l != j} (x - a_l),
 * f_j = N_j(a_j), M = prod_l (x - a_l). The correlation is its transpose in h, so with the
 * 1/f_j moved into G: AT[i][j] = a_j^i, G[j][k] = a_j^k / f_j, BT[j] = coefficients of
 * N_j, and the infinity row/column picks the leading taps. */
int da_winograd_matrices(int m, int r, double *AT, double *G, double *BT)
{
    int t = m + r - 1, n = t - 1;
    if (m < 1 || r < 1 || t > WINO_MAX_T)
        return da_set_error(DA_ERANGE, "da_winograd_matrices: F(%d, %d) needs m, r >= 1 and "
                            "m + r - 1 <= %d", m, r, WINO_MAX_T);
    double a[WINO_MAX_T], c[WINO_MAX_T + 1];
    for (int j = 0; j < n; j++) /* 0, 1, -1, 2, -2, ... */
        a[j] = j == 0 ? 0 : (j % 2 ? (j + 1) / 2 : -(j / 2));
    for (int j = 0; j < t; j++) {
        double f = 1;
        for (int l = 0; l < n && j < n; l++)
            f *= l == j ? 1 : a[j] - a[l];
        for (int i = 0; i < m; i++)
            AT[i * t + j] = j < n ? pow(a[j], i) : i == m - 1;
        for (int k = 0; k < r; k++)
            G[j * r + k] = j < n ? pow(a[j], k) / f : k == r - 1;
        poly_from_roots(a, n, j < n ? j : -1, c);
        for (int i = 0; i < t; i++)
            BT[j * t + i] = c[i];
    }
    return DA_OK;
}

/* ---- the transforms of one plane, vectorised over tile columns ----
 * Blocks of LANES tile columns are one `lanes` value (a GCC vector of floats: one AVX2
 * register, two SSE ones in the baseline build), so the small t x t products of a block
 * accumulate in registers: out = sum_i coef[i] in[i]. Whole rows (the vertical passes,
 * the scatter of input tiles) are plain SIMD loops. */

#define LANES 8 /* tile columns per block */

typedef float lanes __attribute__((vector_size(LANES * sizeof(float))));

/* The helpers take `lanes` through pointers, never by value: a 32-byte vector argument
 * or result would have a different calling convention in the AVX and the default clones
 * (GCC warns, clang refuses). They are static inline, so nothing goes through memory. */
static inline void lanes_load(lanes *v, const float *src) { memcpy(v, src, sizeof *v); }

/* the first n of LANES values (the last block of a tile row), the rest zero */
static inline void lanes_load_n(lanes *v, const float *src, int n)
{
    float u[LANES] = {0};
    memcpy(u, src, (size_t)n * sizeof *u);
    memcpy(v, u, sizeof *v);
}

/* A block is always stored whole: the lanes of the last block of a tile row land on the
 * first tiles of the next row (or of the next image), which are stored after it, or on the
 * slack columns past the chunk's tiles. */
static inline void lanes_store(float *dst, const lanes *v) { memcpy(dst, v, sizeof *v); }

/* *out = sum_q r->c[q] in[r->idx[q]] */
static inline void combine(const wino_row *r, const lanes *in, lanes *out)
{
    lanes acc = {0};
    for (int q = 0; q < r->n; q++)
        acc += r->c[q] * in[r->idx[q]];
    *out = acc;
}

/* dst = combine(r, in), stored */
static inline void combine_store(float *dst, const wino_row *r, const lanes *in)
{
    lanes acc;
    combine(r, in, &acc);
    lanes_store(dst, &acc);
}

/* y [n] += s x [n] */
static inline void axpy(int n, float s, const float *restrict x, float *restrict y)
{
    OPS_PRAGMA(omp simd)
    for (int i = 0; i < n; i++)
        y[i] += s * x[i];
}

/* dst [n] (+)= sum_{i < k} coef[i * cs] src[i * ss ..], zero coefficients skipped */
static void rows_combine(int n, int k, const float *coef, int cs, const float *src, long ss,
                         float *dst, int add)
{
    if (!add)
        memset(dst, 0, (size_t)n * sizeof *dst);
    for (int i = 0; i < k; i++)
        if (coef[i * cs] != 0)
            axpy(n, coef[i * cs], src + i * ss, dst);
}

/* input columns [q0, q1) of phase ph land on columns q*m + ph - pad in [0, W) */
static void phase_range(const wino_plan *p, const conv_geom *g, int ph, int *q0, int *q1)
{
    int m = p->m, hi = g->W + g->pad - ph; /* q*m < hi */
    *q0 = ph >= g->pad ? 0 : (g->pad - ph + m - 1) / m;
    *q1 = hi > 0 ? (hi + m - 1) / m : 0;
}

/* xq [Hp][m][Wq] = the zero-padded plane x [H][W], split by column phase */
static void pad_plane(const wino_plan *p, const conv_geom *g, const float *x, float *xq)
{
    memset(xq, 0, (size_t)p->Hp * p->L * sizeof *xq);
    for (int ph = 0; ph < p->m; ph++) {
        int q0, q1;
        phase_range(p, g, ph, &q0, &q1);
        for (int h = 0; h < g->H; h++) {
            const float *src = x + (long)h * g->W;
            float *dst = xq + (long)(h + g->pad) * p->L + ph * p->Wq;
            for (int q = q0; q < q1; q++)
                dst[q] = src[q * p->m + ph - g->pad];
        }
    }
}

/* gx [H][W] += the interior of the padded, phase-split plane dxq [Hp][m][Wq] */
static void unpad_add(const wino_plan *p, const conv_geom *g, const float *dxq, float *gx)
{
    for (int ph = 0; ph < p->m; ph++) {
        int q0, q1;
        phase_range(p, g, ph, &q0, &q1);
        for (int h = 0; h < g->H; h++) {
            float *dst = gx + (long)h * g->W;
            const float *src = dxq + (long)(h + g->pad) * p->L + ph * p->Wq;
            for (int q = q0; q < q1; q++)
                dst[q * p->m + ph - g->pad] += src[q];
        }
    }
}

/* V = B^T d B for the tiles of tile row a of the padded plane xq [Hp][m][Wq]: V[xi][b] at
 * V + xi * vs + b. Z [t][L] = B^T (the row's t padded rows) over whole rows, then V = Z B
 * per block (column b*m + j of Z row xi is at (j % m) * Wq + j / m + b). */
WINO_CLONES static void input_row(const wino_plan *p, const float *xq, int a, float *V,
                                  long vs, float *Z)
{
    int m = p->m, L = p->L, tw = p->tw;
    for (int xi = 0; xi < WINO_T; xi++)
        rows_combine(L, WINO_T, p->BT + xi * WINO_T, 1, xq + (long)a * m * L, L, Z + xi * L, 0);
    for (int xi = 0; xi < WINO_T; xi++)
        for (int b0 = 0; b0 < tw; b0 += LANES) {
            lanes z[WINO_T];
            for (int j = 0; j < WINO_T; j++)
                lanes_load(&z[j], Z + xi * L + (j % m) * p->Wq + j / m + b0);
            for (int xj = 0; xj < WINO_T; xj++)
                combine_store(V + (xi * WINO_T + xj) * vs + b0, &p->bt_row[xj], z);
        }
}

/* dxq [Hp][m][Wq] += B dV B^T for the tiles of tile row a, overlapping tiles added (the
 * adjoint of input_row); dV[xi][b] at dV + xi * vs + b. buf: t * (L + tw8) floats. */
WINO_CLONES static void dinput_row(const wino_plan *p, const float *dV, long vs, float *dxq,
                                   int a, float *buf)
{
    int m = p->m, L = p->L, tw = p->tw, tw8 = (tw + LANES - 1) / LANES * LANES;
    float *dZ = buf, *dz = buf + (long)WINO_T * L; /* dZ [t][L], dz [t][tw8] */
    memset(dZ, 0, (size_t)WINO_T * L * sizeof *dZ);
    for (int xi = 0; xi < WINO_T; xi++) {
        for (int b0 = 0; b0 < tw; b0 += LANES) { /* dz[j][b] = sum_xj BT[xj][j] dV[xj][b] */
            int n = tw - b0 < LANES ? tw - b0 : LANES;
            lanes v[WINO_T];
            for (int xj = 0; xj < WINO_T; xj++) {
                const float *src = dV + (xi * WINO_T + xj) * vs + b0;
                if (n == LANES)
                    lanes_load(&v[xj], src);
                else
                    lanes_load_n(&v[xj], src, n);
            }
            for (int j = 0; j < WINO_T; j++)
                combine_store(dz + j * tw8 + b0, &p->bt_col[j], v);
        }
        for (int j = 0; j < WINO_T; j++) /* scattered to the tiles' columns */
            axpy(tw, 1, dz + j * tw8, dZ + xi * L + (j % m) * p->Wq + j / m);
    }
    for (int i = 0; i < WINO_T; i++)
        rows_combine(L, WINO_T, p->BT + i, WINO_T, dZ, L, dxq + (long)(a * m + i) * L, 1);
}

/* tile columns b with b*m + mj < Wo (output column mj of the tile inside the plane) */
static inline int valid_cols(const wino_plan *p, const conv_geom *g, int mj)
{
    return mj < g->Wo ? (g->Wo - mj + p->m - 1) / p->m : 0;
}

/* the outputs of tile row a in the plane Y [Ho][Wo] = A^T M A of its tiles, outputs past
 * Ho, Wo dropped; M[xi][b] at M + xi * ms + b. The last block reads lanes past the row
 * (tiles of the next row, or slack columns): lanes are independent and those are dropped. */
WINO_CLONES static void output_row(const wino_plan *p, const conv_geom *g, const float *M,
                                   long ms, float *Y, int a)
{
    int m = p->m, tw = p->tw, rows = g->Ho - a * m < m ? g->Ho - a * m : m;
    for (int b0 = 0; b0 < tw; b0 += LANES) {
        lanes s[WINO_MAX_M][WINO_T]; /* s[mj][xi]: A^T along the columns */
        for (int xi = 0; xi < WINO_T; xi++) {
            lanes v[WINO_T];
            for (int xj = 0; xj < WINO_T; xj++)
                lanes_load(&v[xj], M + (xi * WINO_T + xj) * ms + b0);
            for (int mj = 0; mj < m; mj++)
                combine(&p->at_row[mj], v, &s[mj][xi]);
        }
        for (int mi = 0; mi < rows; mi++) {
            float *row = Y + (long)(a * m + mi) * g->Wo + b0 * m, y[LANES];
            for (int mj = 0; mj < m; mj++) {
                lanes yv;
                combine(&p->at_row[mi], s[mj], &yv);
                memcpy(y, &yv, sizeof y);
                for (int l = 0; l < LANES && b0 + l < valid_cols(p, g, mj); l++)
                    row[l * m + mj] = y[l];
            }
        }
    }
}

/* Z = A dY A^T for the tiles of tile row a of the output grad plane dY [Ho][Wo] (zero past
 * its edges), the adjoint of output_row: Z[xi][b] at Z + xi * zs + b. The tile row of dY
 * is first split by column phase, buf = dq [m][m][tw8] (rows past Ho, columns past Wo
 * zero). */
WINO_CLONES static void doutput_row(const wino_plan *p, const conv_geom *g, const float *dY,
                                    int a, float *Z, long zs, float *buf)
{
    int m = p->m, tw = p->tw, tw8 = (tw + LANES - 1) / LANES * LANES;
    int rows = g->Ho - a * m < m ? g->Ho - a * m : m;
    memset(buf, 0, (size_t)m * m * tw8 * sizeof *buf);
    for (int mi = 0; mi < rows; mi++)
        for (int mj = 0; mj < m; mj++) {
            const float *row = dY + (long)(a * m + mi) * g->Wo + mj;
            float *dq = buf + (mj * m + mi) * tw8;
            for (int b = 0, nc = valid_cols(p, g, mj); b < nc; b++)
                dq[b] = row[b * m];
        }
    for (int b0 = 0; b0 < tw; b0 += LANES) {
        lanes e[WINO_MAX_M][WINO_MAX_M], s[WINO_MAX_M]; /* e[mj][mi] = dY[mi][mj] */
        for (int mj = 0; mj < m; mj++)
            for (int mi = 0; mi < m; mi++)
                lanes_load(&e[mj][mi], buf + (mj * m + mi) * tw8 + b0);
        for (int xi = 0; xi < WINO_T; xi++) {
            for (int mj = 0; mj < m; mj++) /* s = A along the rows */
                combine(&p->at_col[xi], e[mj], &s[mj]);
            for (int xj = 0; xj < WINO_T; xj++)
                combine_store(Z + (xi * WINO_T + xj) * zs + b0, &p->at_col[xj], s);
        }
    }
}

/* ---- weights: U = G w G^T in the forward, dW = G^T dU G in the backward (double) ---- */

static void weight_transform(const wino_plan *p, const conv_geom *g, const float *w)
{
    int t = p->t, r = p->r;
    long OC = (long)g->O * g->C;
#pragma omp parallel for schedule(static) if (OC * p->tt >= OPS_PAR_MIN)
    for (long oc = 0; oc < OC; oc++) {
        const float *wk = w + oc * r * r;
        double Gw[WINO_MAX_T * WINO_MAX_T]; /* [t][r] */
        for (int xi = 0; xi < t; xi++)
            for (int j = 0; j < r; j++) {
                double s = 0;
                for (int i = 0; i < r; i++)
                    s += p->G[xi * r + i] * wk[i * r + j];
                Gw[xi * r + j] = s;
            }
        for (int xi = 0; xi < t; xi++)
            for (int xj = 0; xj < t; xj++) {
                double s = 0;
                for (int j = 0; j < r; j++)
                    s += Gw[xi * r + j] * p->G[xj * r + j];
                p->U[(xi * t + xj) * OC + oc] = (float)s;
            }
    }
}

long da_wino_dU_size(const conv_geom *g) { return (long)g->wino->tt * g->O * g->C; }

void da_wino_weight_grad(const conv_geom *g, const char *part, size_t stride, int slots,
                         float *gw)
{
    const wino_plan *p = g->wino;
    int t = p->t, r = p->r;
    long OC = (long)g->O * g->C;
#pragma omp parallel for schedule(static) if (OC * p->tt * slots >= OPS_PAR_MIN)
    for (long oc = 0; oc < OC; oc++) {
        double dU[WINO_MAX_T * WINO_MAX_T], Gd[WINO_MAX_T * WINO_MAX_T]; /* [t][t], [t][r] */
        for (int xi = 0; xi < p->tt; xi++) {
            double s = 0;
            for (int k = 0; k < slots; k++)
                s += ((const float *)(part + (size_t)k * stride))[xi * OC + oc];
            dU[xi] = s;
        }
        for (int xi = 0; xi < t; xi++) /* dU G [t][r] */
            for (int j = 0; j < r; j++) {
                double s = 0;
                for (int xj = 0; xj < t; xj++)
                    s += dU[xi * t + xj] * p->G[xj * r + j];
                Gd[xi * r + j] = s;
            }
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                double s = 0;
                for (int xi = 0; xi < t; xi++)
                    s += p->G[xi * r + i] * Gd[xi * r + j];
                gw[oc * r * r + i * r + j] += (float)s;
            }
    }
}

/* ---- plan and chunks ---- */

/* the nonzeros of a[0], a[s], ..., a[(n-1) s] */
static void sparse_row(const double *a, int s, int n, wino_row *r)
{
    r->n = 0;
    for (int i = 0; i < n; i++)
        if (a[i * s] != 0) {
            r->idx[r->n] = i;
            r->c[r->n++] = (float)a[i * s];
        }
}

static int wino_applies(const conv_geom *g, int algo)
{
    int square = g->kh == g->kw && (g->kh == 3 || g->kh == 5);
    if (g->dt != DA_F32 || !square || g->stride != 1 || algo == DA_CONV_IM2COL)
        return 0;
    return algo == DA_CONV_WINOGRAD || g->C >= WINO_MIN_C;
}

int da_wino_plan(da_ctx *ctx, conv_geom *g, const da_tensor *w, int algo)
{
    g->wino = NULL;
    if (!wino_applies(g, algo))
        return DA_OK;
    wino_plan *p = da_ctx_alloc(ctx, sizeof *p);
    if (!p)
        return DA_ENOMEM;
    int m = WINO_T - g->kh + 1, r = g->kh, t = WINO_T;
    double AT[WINO_MAX_T * WINO_MAX_T], BT[WINO_MAX_T * WINO_MAX_T];
    da_winograd_matrices(m, r, AT, p->G, BT);
    for (int i = 0; i < t * t; i++)
        p->BT[i] = (float)BT[i];
    for (int i = 0; i < t; i++) {
        sparse_row(BT + i * t, 1, t, &p->bt_row[i]);
        sparse_row(BT + i, t, t, &p->bt_col[i]);
        sparse_row(AT + i, t, m, &p->at_col[i]);
    }
    for (int i = 0; i < m; i++)
        sparse_row(AT + i * t, 1, t, &p->at_row[i]);
    p->m = m, p->r = r, p->t = t, p->tt = t * t;
    p->th = (g->Ho + m - 1) / m;
    p->tw = (g->Wo + m - 1) / m;
    p->Hp = p->th * m + t - m;
    p->Wq = (p->tw + LANES - 1) / LANES * LANES + (t - 1) / m; /* the blocks' last loads */
    p->L = m * p->Wq;
    p->bh = (WINO_BLOCK_TILES + p->tw - 1) / p->tw;
    p->ld = (p->bh * p->tw + LANES + 15) / 16 * 16; /* slack for a block's last lanes */
    p->U = da_ctx_alloc_uninit(ctx, (size_t)p->tt * g->O * g->C * sizeof(float));
    if (!p->U)
        return DA_ENOMEM;
    weight_transform(p, g, w->data);
    g->wino = p;
    return DA_OK;
}

/* floats from V[xi] to V[xi + 1] (rows rows of ld): one cache line more than the block,
 * so that the t*t loads of a transform do not all fall into the same cache sets */
static long xi_stride(const wino_plan *p, int rows) { return (long)rows * p->ld + 16; }

/* work: V [tt][C][ld], M [tt][O][ld] (xi_stride apart), the padded input planes xq and
 * their grads dxq [nb][C][Hp][L] each, a row buffer */
static size_t work_sizes(const conv_geom *g, size_t *sz)
{
    const wino_plan *p = g->wino;
    size_t tw8 = (size_t)(p->tw + LANES - 1) / LANES * LANES, planes = (size_t)g->nb * g->C;
    sz[0] = round64((size_t)p->tt * xi_stride(p, g->C) * sizeof(float));
    sz[1] = round64((size_t)p->tt * xi_stride(p, g->O) * sizeof(float));
    sz[2] = sz[3] = round64(planes * p->Hp * p->L * sizeof(float));
    sz[4] = round64((size_t)p->t * (p->L + tw8) * sizeof(float));
    return sz[0] + sz[1] + sz[2] + sz[3] + sz[4];
}

size_t da_wino_work_bytes(const conv_geom *g)
{
    size_t sz[5];
    return work_sizes(g, sz);
}

typedef struct {
    float *V, *M, *xq, *dxq, *row;
} wino_work;

static wino_work work_split(const conv_geom *g, char *work)
{
    size_t sz[5];
    work_sizes(g, sz);
    wino_work w = {.V = (float *)work};
    w.M = (float *)(work + sz[0]);
    w.xq = (float *)(work + sz[0] + sz[1]);
    w.dxq = (float *)(work + sz[0] + sz[1] + sz[2]);
    w.row = (float *)(work + sz[0] + sz[1] + sz[2] + sz[3]);
    return w;
}

/* the padded planes xq of the count images from n0 */
static void pad_chunk(const conv_geom *g, const float *x, int n0, int count, float *xq)
{
    const wino_plan *p = g->wino;
    long plane = (long)g->H * g->W, qplane = (long)p->Hp * p->L;
    for (long i = 0; i < (long)count * g->C; i++)
        pad_plane(p, g, x + ((long)n0 * g->C + i) * plane, xq + i * qplane);
}

/* V of the tile rows [R0, R0 + nr) of the chunk (row R: image R / th, tile row R % th) */
static void input_block(const conv_geom *g, const wino_work *w, int R0, int nr)
{
    const wino_plan *p = g->wino;
    long vs = xi_stride(p, g->C), qplane = (long)p->Hp * p->L;
    for (int c = 0; c < g->C; c++)
        for (int q = 0; q < nr; q++) {
            int k = (R0 + q) / p->th, a = (R0 + q) % p->th;
            input_row(p, w->xq + ((long)k * g->C + c) * qplane, a,
                      w->V + (long)c * p->ld + (long)q * p->tw, vs, w->row);
        }
}

/* The chunk's tiles run in blocks of bh tile rows (across its images), small enough for
 * the block's V and M to stay in cache between the transforms and the GEMMs. */
void da_wino_forward_chunk(const conv_geom *g, const float *x, float *Y, char *work, int c)
{
    const wino_plan *p = g->wino;
    int count, n0 = conv_chunk(g, c, &count), rows = count * p->th;
    long ldY = (long)g->P * g->nb, ms = xi_stride(p, g->O), vs = xi_stride(p, g->C);
    long OC = (long)g->O * g->C;
    wino_work w = work_split(g, work);
    pad_chunk(g, x, n0, count, w.xq);
    for (int R0 = 0; R0 < rows; R0 += p->bh) {
        int nr = rows - R0 < p->bh ? rows - R0 : p->bh;
        input_block(g, &w, R0, nr);
        for (int xi = 0; xi < p->tt; xi++)
            gemm_into(DA_F32, 0, 0, g->O, nr * p->tw, g->C, p->U + xi * OC, g->C,
                      w.V + xi * vs, p->ld, w.M + xi * ms, p->ld);
        for (int o = 0; o < g->O; o++)
            for (int q = 0; q < nr; q++) {
                int k = (R0 + q) / p->th, a = (R0 + q) % p->th;
                output_row(p, g, w.M + (long)o * p->ld + (long)q * p->tw, ms,
                           Y + o * ldY + (long)k * g->P, a);
            }
    }
}

void da_wino_backward_chunk(const conv_geom *g, const float *x, const float *G, char *work,
                            float *dU, float *gx, int c)
{
    const wino_plan *p = g->wino;
    int count, n0 = conv_chunk(g, c, &count), rows = count * p->th;
    long ldG = (long)g->P * g->nb, zs = xi_stride(p, g->O), vs = xi_stride(p, g->C);
    long OC = (long)g->O * g->C, plane = (long)g->H * g->W, qplane = (long)p->Hp * p->L;
    wino_work w = work_split(g, work);
    if (dU)
        pad_chunk(g, x, n0, count, w.xq);
    if (gx)
        memset(w.dxq, 0, (size_t)count * g->C * qplane * sizeof(float));
    for (int R0 = 0; R0 < rows; R0 += p->bh) {
        int nr = rows - R0 < p->bh ? rows - R0 : p->bh, cols = nr * p->tw;
        for (int o = 0; o < g->O; o++) /* Z = A dY A^T, in M's place */
            for (int q = 0; q < nr; q++) {
                int k = (R0 + q) / p->th, a = (R0 + q) % p->th;
                doutput_row(p, g, G + o * ldG + (long)k * g->P, a,
                            w.M + (long)o * p->ld + (long)q * p->tw, zs, w.row);
            }
        if (dU) {
            input_block(g, &w, R0, nr);
            for (int xi = 0; xi < p->tt; xi++)
                gemm(DA_F32, 0, 1, g->O, g->C, cols, 1, w.M + xi * zs, p->ld, w.V + xi * vs,
                     p->ld, 1, dU + xi * OC, g->C);
        }
        if (!gx)
            continue;
        for (int xi = 0; xi < p->tt; xi++) /* dV, in V's place */
            gemm_into(DA_F32, 1, 0, g->C, cols, g->O, p->U + xi * OC, g->C, w.M + xi * zs,
                      p->ld, w.V + xi * vs, p->ld);
        for (int ch = 0; ch < g->C; ch++)
            for (int q = 0; q < nr; q++) {
                int k = (R0 + q) / p->th, a = (R0 + q) % p->th;
                dinput_row(p, w.V + (long)ch * p->ld + (long)q * p->tw, vs,
                           w.dxq + ((long)k * g->C + ch) * qplane, a, w.row);
            }
    }
    for (long i = 0; gx && i < (long)count * g->C; i++)
        unpad_add(p, g, w.dxq + i * qplane, gx + ((long)n0 * g->C + i) * plane);
}
