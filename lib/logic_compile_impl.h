/* logic_compile_impl.h - the circuit of logic_compile.h, shared by logic_compile.c
 * (construction, evaluation) and logic_export.c (C and Verilog exports). Not
 * installed; not part of the public API. */
#ifndef DA_LOGIC_COMPILE_IMPL_H
#define DA_LOGIC_COMPILE_IMPL_H

#include "logic_compile.h"

/* normalized gate operations */
enum { DA_LOGIC_OP_AND, DA_LOGIC_OP_ANDNOT, DA_LOGIC_OP_XOR, DA_LOGIC_OP_OR };

typedef struct {
    int op, a, b; /* operand nodes */
} da_logic_cgate;

/* gates [start, end) share one op (the evaluator's branch-free inner loops) */
typedef struct {
    int op, start, end;
} da_logic_run;

/* the evaluator's form of gate g: slot y = slot a OP slot b (value slots are reused once
 * a node has no reader left, so a block's values stay in cache) */
typedef struct {
    int y, a, b;
} da_logic_step;

/* bit planes of a class count: group < 2^planes */
#define DA_LOGIC_MAX_PLANES 31

/* A reference is node * 2 + negated. Node 0 is the constant false (ref 0 = false,
 * ref 1 = true), nodes 1 .. n_bits are the input bits, node n_bits + 1 + g is gate g. */
struct da_logic_circuit {
    int n_inputs, n_thresholds, n_bits, n_classes, n_out, group, planes;
    double *thresholds; /* [n_thresholds] */
    float *thr_f;       /* [n_thresholds] the largest float <= each threshold: for a
                           float x, x > thr_f[t] exactly when x > thresholds[t] */
    int n_gates, n_runs;
    da_logic_cgate *gates;       /* [n_gates] in topological order */
    da_logic_run *runs;          /* [n_runs] covering the gates in order */
    /* evaluation plan: slot 0 is false, slots 1 .. n_bits the input bits */
    int n_slots;
    da_logic_step *steps;        /* [n_gates] */
    int *out_slot;               /* [n_out] slot * 2 + negated */
    int *out;           /* [n_out] references */
    long gates_before;
};

#endif
