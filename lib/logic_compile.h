/* logic_compile.h - compiled inference of a trained logic gate network in hard mode
 * (difflogic's CompiledLogicNet idea; Petersen et al., NeurIPS 2022, Section 5.4):
 * a bit-parallel evaluator (64 samples per uint64 word), a standalone C export and a
 * synthesizable Verilog export.
 *
 * Compilation turns the argmax gate of every neuron into a circuit over the input bits
 * (a convolutional network is unrolled first: every tree gate becomes one gate per
 * output position, reading false in the zero padding, and every OR pooling window a
 * chain of OR gates) and simplifies it:
 *  - signals are references "node or its negation", so NOT gates are free;
 *  - constant folding: a gate with a constant operand, with both operands the same
 *    signal, or whose function ignores an operand becomes a constant, a wire or a
 *    negated wire (gates 0, 3, 5, 10, 12, 15 always do);
 *  - every remaining gate is normalized to one of AND (a & b), ANDNOT (a & ~b), XOR,
 *    OR on two distinct non-constant nodes, with the output negation absorbed into the
 *    reference (so NAND, NOR, XNOR, implications share nodes with AND, OR, XOR, ANDNOT);
 *  - identical gates are merged (structural hashing) and gates that no output reaches
 *    are removed (dead-gate elimination);
 *  - the gates are ordered by level (longest path from the inputs), then by operation,
 *    so that the evaluator runs branch-free loops over runs of one op;
 *  - every node gets a value slot, reused once the node has no reader left (last in,
 *    first out), so a block's values stay in cache (MNIST 6 x 8000: 23,222 nodes in
 *    7,243 slots).
 * The last layer's outputs (references, possibly negated or constant) feed GroupSum:
 * the class score is the number of true outputs in the class's group, computed with a
 * bit-sliced popcount (carry-save adders over blocks of 16 outputs into bit planes).
 * Predictions are the first maximal count, found bit-sliced (a comparator over the
 * planes and a multiplexer per class), which is exactly the hard mode's argmax of
 * count / tau: da_logic_circuit_predict gives the predictions of da_logicnet_predict.
 *
 * The evaluator takes 256 samples per pass (a slot is 4 words of 64 samples, GCC vector
 * types: one AVX2 instruction per gate where the CPU has it, chosen at load time). The
 * float pixels are binarized 64 samples and 32 inputs at a time: one float compare per 8
 * inputs shifts a sample's bit into 32-bit words (x > t for a float x is x > the largest
 * float <= t, so float compares give the hard mode's double ones), after a sequential
 * pass that checks the rows finite and brings them into cache.
 *
 * Exports (both written atomically):
 *  - C (C99 and its standard headers; GCC's vector extension where the compiler is GCC
 *    or clang, plain 64-bit words with -DLN_PORTABLE or elsewhere): the same algorithm
 *    as the evaluator, `void logicnet_eval(ln_vec *v)` (one bitwise expression per gate
 *    on value slots, v[0] = 0, v[1 + i] = input bit i), `int logicnet_predict(long n,
 *    const float *x, int *pred)` (binarization by the thresholds, evaluation,
 *    carry-save popcount, bit-sliced argmax; returns 0, -1 out of memory, -2 NaN or Inf
 *    in x) and, compiled with -DLOGICNET_MAIN, a main() that reads n rows of n_inputs
 *    raw float32 values from stdin and prints one prediction per line (with argument
 *    "--bench" it prints only "samples_per_s R" after repeating the predictions for
 *    about a second of CPU time; exit status 1 on bad input).
 *  - Verilog-2001: `module NAME(input wire [n_bits-1:0] x, output wire [w-1:0] y)`, a
 *    purely combinational circuit from the binarized input bits (bit t * n_inputs + i
 *    as in logicnet.h) to the predicted class y (w = bits to hold n_classes - 1, at
 *    least 1): one assign per gate, adders for the class counts, a comparator chain for
 *    the first maximum.
 *
 * Ownership: da_logic_circuit_new allocates, da_logic_circuit_free frees (NULL no-op).
 * The circuit does not reference the network after construction. */
#ifndef DA_LOGIC_COMPILE_H
#define DA_LOGIC_COMPILE_H

#include <stdint.h>

#include "logicnet.h"

typedef struct da_logic_circuit da_logic_circuit;

typedef struct {
    long gates_before;  /* neurons of the network (n_layers * width, plus the unrolled
                           tree and OR-pool gates of a convolutional network) */
    long gates_after;   /* gates of the circuit (AND, ANDNOT, XOR, OR) */
    long n_and, n_andnot, n_xor, n_or;
    long n_outputs;     /* width of the last layer */
    long n_const_outputs;
} da_logic_circuit_stats;

/* NULL on error (NULL net: DA_EINVAL; more than 2^28 unrolled gates: DA_ERANGE;
 * DA_ENOMEM). */
da_logic_circuit *da_logic_circuit_new(const da_logicnet *net);
void da_logic_circuit_free(da_logic_circuit *c);
da_logic_circuit_stats da_logic_circuit_get_stats(const da_logic_circuit *c);

/* Hard-mode predictions pred [n] of raw inputs x [n][n_inputs] (single thread).
 * DA_ENAN if an x is NaN or infinite (checked block by block of 256 rows: the
 * predictions of earlier blocks are then written). */
int da_logic_circuit_predict(const da_logic_circuit *c, long n, const float *x, int *pred);
/* Class counts of 64 samples: in [n_bits] words (bit s of in[i] = input bit i of
 * sample s) -> counts [64][n_classes]. */
int da_logic_circuit_counts64(const da_logic_circuit *c, const uint64_t *in, int *counts);

int da_logic_circuit_export_c(const da_logic_circuit *c, const char *path);
/* module name: a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*), DA_EINVAL otherwise */
int da_logic_circuit_export_verilog(const da_logic_circuit *c, const char *module,
                                    const char *path);

#endif
