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

/* A reference is node * 2 + negated. Node 0 is the constant false (ref 0 = false,
 * ref 1 = true), nodes 1 .. n_bits are the input bits, node n_bits + 1 + g is gate g. */
struct da_logic_circuit {
    int n_inputs, n_thresholds, n_bits, n_classes, n_out, group, planes;
    double *thresholds; /* [n_thresholds] */
    int n_gates;
    da_logic_cgate *gates;       /* [n_gates] in topological order */
    int *out;           /* [n_out] references */
    long gates_before;
};

#endif
