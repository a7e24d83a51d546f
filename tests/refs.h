/* refs.h - loader for the reference vectors in ../shared/refs (FORMAT.md there), shared
 * by every test suite. The directory comes from the environment variable DA_REFS_DIR
 * (set by `make check`). Ownership: ref_load allocates, ref_free frees; tensors and
 * strings returned by the getters belong to the ref. */
#ifndef DA_TEST_REFS_H
#define DA_TEST_REFS_H

typedef struct {
    char name[64];
    int ndim;          /* 0 for a scalar */
    int shape[8];
    long size;
    double *data;      /* [size] */
} ref_tensor;

typedef struct {
    char path[512];
    char kind[64];
    int n_params;
    char (*keys)[64];
    char (*vals)[256];
    int n_tensors;     /* tensors and scalars (scalars have ndim 0) */
    ref_tensor *tensors;
} ref_file;

/* Parse one .ref file; NULL with a message in *err (static buffer) on any error. */
ref_file *ref_load(const char *path, const char **err);
void ref_free(ref_file *r);
/* Tensor or scalar by name, NULL if absent. */
const ref_tensor *ref_get(const ref_file *r, const char *name);
/* Parameter value by key, NULL if absent; numeric version returns `dflt` if absent. */
const char *ref_param(const ref_file *r, const char *key);
double ref_param_num(const ref_file *r, const char *key, double dflt);

/* Sorted list of the .ref files (full paths) of one kind (sub-folder of DA_REFS_DIR).
 * Returns the count (0 if none or the folder is missing); free with ref_list_free. */
int ref_list(const char *kind, char ***paths);
void ref_list_free(char **paths, int n);

/* Normwise relative error of DESIGN.md §6: max|a - ref| / max|ref| (absolute error if
 * ref is all zero). */
double ref_err(const double *a, const double *ref, long n);

#endif
