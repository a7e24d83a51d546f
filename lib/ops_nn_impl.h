/* ops_nn_impl.h - helpers shared by lib/ops_nn.c (matrix products) and lib/ops_conv.c
 * (convolution, pooling). Internal: not installed, every function static inline. */
#ifndef DA_OPS_NN_IMPL_H
#define DA_OPS_NN_IMPL_H

#include <cblas.h>
#include <string.h>

#include "ops_util.h"
#include "tensor.h"

/* arena memory and tensors without the zero fill, for buffers an op overwrites (tensor.c) */
void *da_ctx_alloc_uninit(da_ctx *ctx, size_t bytes);
da_tensor *da_ctx_tensor_uninit(da_ctx *ctx, da_dtype dtype, int ndim, const int *shape);

/* C = alpha op(A) op(B) + beta C, row-major, through sgemm/dgemm by dtype */
static inline void gemm(da_dtype dt, int ta, int tb, int M, int N, int K, double alpha,
                        const void *A, int lda, const void *B, int ldb, double beta, void *C,
                        int ldc)
{
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE TB = tb ? CblasTrans : CblasNoTrans;
    if (dt == DA_F32)
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, (float)alpha, A, lda, B, ldb,
                    (float)beta, C, ldc);
    else
        cblas_dgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* A NULL input passes the error of the op that produced it through (or reports one). */
static inline int check_input(const char *who, const da_tensor *t, const char *what,
                              int ndim)
{
    if (!t) {
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "%s: %s is NULL", who, what);
        return da_last_error_code();
    }
    if (ndim >= 0 && t->ndim != ndim)
        return da_set_error(DA_ESHAPE, "%s: %s has %d dimensions (need %d)", who, what,
                            t->ndim, ndim);
    return DA_OK;
}

static inline int check_dtypes(const char *who, const da_tensor *a, const da_tensor *b)
{
    if (b && a->dtype != b->dtype)
        return da_set_error(DA_EDTYPE, "%s: inputs have different dtypes", who);
    return DA_OK;
}

static inline int check_ctx(const char *who, const da_ctx *ctx)
{
    return ctx ? DA_OK : da_set_error(DA_EINVAL, "%s: ctx is NULL", who);
}

#endif
