/* relperm_check.h - checks shared by test_neuralsort and test_softsort: both modules have
 * the same five entry points (operator, loss, Hessian, two tensor faces); a test
 * program describes its module with an rp_ops table and runs rp_run_suite with its own
 * extra tests (the checks fail through ck_assert). */
#ifndef DA_TEST_RELPERM_CHECK_H
#define DA_TEST_RELPERM_CHECK_H

#include <check.h>

#include "tensor.h"

typedef struct {
    const char *name;     /* public prefix, expected in error messages */
    const char *ref_kind; /* refs folder */
    int ref_desc_rows;    /* 1: the refs' P and W are in the descending-row layout */
    int max_n;
    int (*apply)(int n, double tau, int batch, const double *x, double *P, const double *cot,
                 double *grad_x);
    int (*loss)(int n, double tau, int batch, const double *x, const double *targets,
                double *loss, double *grad);
    int (*hessian)(int n, double tau, int batch, const double *x, const double *targets,
                   double *H);
    da_tensor *(*loss_op)(da_ctx *ctx, da_tensor *scores, const double *targets, int n,
                          double tau);
    da_tensor *(*perm_op)(da_ctx *ctx, da_tensor *scores, int n, double tau);
} rp_ops;

/* every refs file: P (< 1e-9), sum(P*W) (< 1e-6) and grad_x (< 1e-6), plain and tensor */
void rp_check_refs(const rp_ops *ops);
/* P is column-stochastic; the VJP matches central differences of sum(P*W) in double */
void rp_check_vjp_fd(const rp_ops *ops, int n, double tau, int batch);
/* the loss is the column cross-entropy of the header; its gradient matches central
 * differences; near-zero loss for perfectly ordered scores at small tau */
void rp_check_loss(const rp_ops *ops, int n, double tau, int batch);
/* the fused loss and its gradient against the CE and the VJP of the operator's P, at
 * targets = x + noise of size mix, with ties (both < 1e-11 relative) */
void rp_check_loss_vs_operator(const rp_ops *ops, int n, double tau, int batch, double mix);
/* plain Hessian vs central differences of the exact gradient, symmetry, zero cross
 * blocks; da_hessian on the tensor face: exact path and finite-difference path agree */
void rp_check_hessian(const rp_ops *ops, int n, double tau, int batch);
/* gc_check (double) and gc_check_f32 on both tensor faces */
void rp_check_tensor_faces(const rp_ops *ops, int n, double tau, int batch);
/* batch results equal per-sample results exactly (OpenMP path) */
void rp_check_batch_consistency(const rp_ops *ops, int n, double tau, int batch);
/* tied scores: finite P, loss, gradients and Hessian; all-equal -> uniform columns */
void rp_check_ties(const rp_ops *ops);
/* error codes and messages of every entry point */
void rp_check_errors(const rp_ops *ops);

/* The whole test program: every check above at fixed sizes, then the module's own tests
 * own[0..n_own-1], in one check suite named ops->ref_kind; returns the exit status. */
int rp_run_suite(const rp_ops *ops, const TTest *const *own, int n_own);

#endif
