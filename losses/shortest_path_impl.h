/* shortest_path_impl.h - internals shared by the shortest_path*.c files (not installed).
 * A da_sp_work is one thread's Dijkstra workspace: da_sp_work_init allocates it,
 * da_sp_work_release frees it (both safe on a zeroed struct). */
#ifndef DA_SHORTEST_PATH_IMPL_H
#define DA_SHORTEST_PATH_IMPL_H

#include "tensor.h"

typedef struct {
    int H, W;
    double *dist;      /* [V] tentative distances */
    int *pred;         /* [V] predecessor on the shortest path tree */
    unsigned char *done; /* [V] settled */
    double *heap_key;  /* [8V+1] lazy heap: distance */
    int *heap_v;       /* [8V+1] lazy heap: vertex */
    double *buf;       /* [V] scratch for callers (perturbed costs) */
    double *path;      /* [V] scratch for callers (a solver output) */
    double *path2;     /* [V] scratch for callers (a second solver output) */
} da_sp_work;

int da_sp_work_init(da_sp_work *ws, int H, int W);
void da_sp_work_release(da_sp_work *ws);
/* Shortest path of cost [V] (finite, >= 0, validated by the caller) into path [V] (0/1);
 * returns its cost (both ends included). */
double da_sp_solve(da_sp_work *ws, const double *cost, double *path);

/* parallelise a batch loop only when it holds enough work (about 16 flops per unit) to
 * pay for the threads */
#define DA_SP_PARALLEL(batch, work) ((batch) > 1 && (double)(work) >= 65536.0)

/* Argument checks shared by the entry points; each records a message naming who. */
int da_sp_check_grid(const char *who, int batch, int H, int W);
/* x: NULL -> DA_EINVAL, NaN/Inf -> DA_ENAN, nonneg and x < 0 -> DA_ERANGE. */
int da_sp_check_values(const char *who, const char *name, const double *x, long n, int nonneg);
/* cost tensor [batch][H][W]: ndim 3, sides in range; fills batch, H, W. */
int da_sp_check_tensor(const char *who, const da_tensor *cost, int *batch, int *H, int *W);

#endif
