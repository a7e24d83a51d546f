/* logic_export.c - standalone C and synthesizable Verilog from a compiled logic gate
 * network (logic_compile.h). The text is built in memory and written atomically. */
#define _GNU_SOURCE /* open_memstream */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "alloc.h"
#include "logic_compile_impl.h"

static const char *const op_c[] = {"&", "& ~", "^", "|"};

#define C_PART_GATES 1024

typedef void (*emit_fn)(const da_logic_circuit *c, const char *name, FILE *f);

/* run emit into memory and write the result to path atomically */
static int write_text(const char *who, const da_logic_circuit *c, const char *name,
                      const char *path, emit_fn emit)
{
    if (!c || !path)
        return da_set_error(DA_EINVAL, "%s: NULL circuit or path", who);
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    emit(c, name, f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        da_free(text);
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    }
    int rc = da_file_write_atomic(path, text, size);
    da_free(text);
    return rc;
}

/* ---- C ---- */

/* the block type: 64 LN_LANES samples per pass with GCC's vector extension, else 64 */
static const char c_types[] =
    "#if defined(__GNUC__) && !defined(LN_PORTABLE)\n"
    "#define LN_VECTOR 1\n"
    "#define LN_LANES 4\n"
    "typedef uint64_t ln_vec __attribute__((vector_size(8 * LN_LANES)));\n"
    "#ifdef __AVX__ /* floats per compare */\n"
    "#define LN_FW 8\n"
    "#else\n"
    "#define LN_FW 4\n"
    "#endif\n"
    "typedef float ln_fv __attribute__((vector_size(4 * LN_FW)));\n"
    "typedef uint32_t ln_uv __attribute__((vector_size(4 * LN_FW)));\n"
    "#define LN_WORD(x, l) ((x)[l])\n"
    "#else /* plain C99: one word */\n"
    "#define LN_LANES 1\n"
    "typedef uint64_t ln_vec;\n"
    "#define LN_WORD(x, l) ((&(x))[l]) /* l = 0 */\n"
    "#endif\n\n";

static const char c_predict[] =
    "/* word l of input slots in [w] at threshold th from rows x [m][LN_INPUTS], m <= 64\n"
    " * (x points at the first input): bit s = x[s][j] > th */\n"
    "static void ln_bits(const float *x, int m, float th, int w, ln_vec *in, int l)\n"
    "{\n"
    "    for (int j = 0; j < w; j++) {\n"
    "        uint64_t bits = 0;\n"
    "        for (int s = m - 1; s >= 0; s--)\n"
    "            bits = bits << 1 | (uint64_t)(x[(long)s * LN_INPUTS + j] > th);\n"
    "        LN_WORD(in[j], l) = bits;\n"
    "    }\n"
    "}\n\n"
    "/* 1 if the n floats x are finite (|x| as an integer below the bits of infinity) */\n"
    "static int ln_finite(const float *x, long n)\n"
    "{\n"
    "    uint32_t bad = 0, u;\n"
    "    long i = 0;\n"
    "#ifdef LN_VECTOR\n"
    "    ln_uv top = {0}, w;\n"
    "    for (; i + LN_FW <= n; i += LN_FW) {\n"
    "        memcpy(&w, x + i, sizeof w);\n"
    "        top |= (ln_uv)((w & 0x7fffffffu) > 0x7f7fffffu);\n"
    "    }\n"
    "    for (int j = 0; j < LN_FW; j++)\n"
    "        bad |= top[j];\n"
    "#endif\n"
    "    for (; i < n; i++) {\n"
    "        memcpy(&u, x + i, sizeof u);\n"
    "        bad |= (u & 0x7fffffffu) > 0x7f7fffffu;\n"
    "    }\n"
    "    return !bad;\n"
    "}\n\n"
    "#ifdef LN_VECTOR\n"
    "#define LN_SHIFT_IN(a, k)                                                 \\\n"
    "    memcpy(&xv, r + (k) * LN_FW, sizeof xv);                              \\\n"
    "    a = (a << 1) - (ln_uv)(xv > tv)\n\n"
    "/* out [8 LN_FW]: bit s = x[s][j] > th, s < ms <= 32: a compare per LN_FW inputs\n"
    " * shifts each sample's bits in, 8 independent chains */\n"
    "static void ln_shift(const float *x, int ms, float th, uint32_t *out)\n"
    "{\n"
    "    ln_fv tv, xv;\n"
    "    ln_uv a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};\n"
    "    for (int j = 0; j < LN_FW; j++)\n"
    "        tv[j] = th;\n"
    "    for (int s = ms - 1; s >= 0; s--) {\n"
    "        const float *r = x + (long)s * LN_INPUTS;\n"
    "        LN_SHIFT_IN(a0, 0);\n"
    "        LN_SHIFT_IN(a1, 1);\n"
    "        LN_SHIFT_IN(a2, 2);\n"
    "        LN_SHIFT_IN(a3, 3);\n"
    "        LN_SHIFT_IN(a4, 4);\n"
    "        LN_SHIFT_IN(a5, 5);\n"
    "        LN_SHIFT_IN(a6, 6);\n"
    "        LN_SHIFT_IN(a7, 7);\n"
    "    }\n"
    "    memcpy(out, &a0, sizeof a0);\n"
    "    memcpy(out + LN_FW, &a1, sizeof a1);\n"
    "    memcpy(out + 2 * LN_FW, &a2, sizeof a2);\n"
    "    memcpy(out + 3 * LN_FW, &a3, sizeof a3);\n"
    "    memcpy(out + 4 * LN_FW, &a4, sizeof a4);\n"
    "    memcpy(out + 5 * LN_FW, &a5, sizeof a5);\n"
    "    memcpy(out + 6 * LN_FW, &a6, sizeof a6);\n"
    "    memcpy(out + 7 * LN_FW, &a7, sizeof a7);\n"
    "}\n\n"
    "/* ln_bits for w = 8 LN_FW inputs */\n"
    "static void ln_bits_wide(const float *x, int m, float th, ln_vec *in, int l)\n"
    "{\n"
    "    uint32_t lo[8 * LN_FW], hi[8 * LN_FW] = {0};\n"
    "    ln_shift(x, m < 32 ? m : 32, th, lo);\n"
    "    if (m > 32)\n"
    "        ln_shift(x + 32 * LN_INPUTS, m - 32, th, hi);\n"
    "    for (int j = 0; j < 8 * LN_FW; j++)\n"
    "        LN_WORD(in[j], l) = lo[j] | (uint64_t)hi[j] << 32;\n"
    "}\n"
    "#endif\n\n"
    "/* v[1 + t * LN_INPUTS + i] = bits of x[s][i] > ln_thr[t], rows x [m][LN_INPUTS]; 0, or\n"
    " * -1 if an x is NaN or infinite (checked in a first, sequential pass) */\n"
    "static int ln_binarize(const float *x, int m, ln_vec *v)\n"
    "{\n"
    "    for (int i = 0; m < 64 * LN_LANES && i < LN_BITS; i++) /* lanes past the rows */\n"
    "        v[1 + i] = v[0];\n"
    "    for (int l = 0; 64 * l < m; l++) {\n"
    "        const float *xl = x + (long)64 * l * LN_INPUTS;\n"
    "        int ml = m - 64 * l < 64 ? m - 64 * l : 64;\n"
    "        if (!ln_finite(xl, (long)ml * LN_INPUTS))\n"
    "            return -1;\n"
    "        for (int t = 0; t < LN_THRESHOLDS; t++) {\n"
    "            ln_vec *in = v + 1 + t * LN_INPUTS;\n"
    "            int i = 0;\n"
    "#ifdef LN_VECTOR\n"
    "            for (; i + 8 * LN_FW <= LN_INPUTS; i += 8 * LN_FW)\n"
    "                ln_bits_wide(xl + i, ml, ln_thr[t], in + i, l);\n"
    "#endif\n"
    "            ln_bits(xl + i, ml, ln_thr[t], LN_INPUTS - i, in + i, l);\n"
    "        }\n"
    "    }\n"
    "    return 0;\n"
    "}\n\n"
    "/* carry-save adder: h, l = the two bits of a + b + c per position (l may be a) */\n"
    "#define LN_CSA(h, l, a, b, c) u = (a) ^ (b), h = ((a) & (b)) | (u & (c)), l = u ^ (c)\n"
    "/* output i of the current block of 16: its slot, negated or not */\n"
    "#define LN_OUT(i) (v[out[i] >> 1] ^ (v[0] - (uint64_t)(out[i] & 1)))\n\n"
    "/* plane [max(LN_PLANES, 4)]: the bit planes of the number of true outputs of class k\n"
    " * (Harley-Seal: carry-save adders over blocks of 16 outputs, the sixteens rippling\n"
    " * into the planes from 4 on) */\n"
    "static void ln_count(const ln_vec *v, int k, ln_vec *plane)\n"
    "{\n"
    "    ln_vec ones = v[0], twos = v[0], fours = v[0], eights = v[0], u, t0, t1, f0, f1, e0, e1;\n"
    "    const int32_t *out = ln_out + k * LN_GROUP16;\n"
    "    for (int p = 4; p < LN_PLANES; p++)\n"
    "        plane[p] = v[0];\n"
    "    for (int o = 0; o < LN_GROUP16; o += 16, out += 16) {\n"
    "        LN_CSA(t0, ones, ones, LN_OUT(0), LN_OUT(1));\n"
    "        LN_CSA(t1, ones, ones, LN_OUT(2), LN_OUT(3));\n"
    "        LN_CSA(f0, twos, twos, t0, t1);\n"
    "        LN_CSA(t0, ones, ones, LN_OUT(4), LN_OUT(5));\n"
    "        LN_CSA(t1, ones, ones, LN_OUT(6), LN_OUT(7));\n"
    "        LN_CSA(f1, twos, twos, t0, t1);\n"
    "        LN_CSA(e0, fours, fours, f0, f1);\n"
    "        LN_CSA(t0, ones, ones, LN_OUT(8), LN_OUT(9));\n"
    "        LN_CSA(t1, ones, ones, LN_OUT(10), LN_OUT(11));\n"
    "        LN_CSA(f0, twos, twos, t0, t1);\n"
    "        LN_CSA(t0, ones, ones, LN_OUT(12), LN_OUT(13));\n"
    "        LN_CSA(t1, ones, ones, LN_OUT(14), LN_OUT(15));\n"
    "        LN_CSA(f1, twos, twos, t0, t1);\n"
    "        LN_CSA(e1, fours, fours, f0, f1);\n"
    "        LN_CSA(t0, eights, eights, e0, e1); /* t0: the sixteens */\n"
    "        for (int p = 4; p < LN_PLANES; p++) {\n"
    "            u = plane[p] & t0;\n"
    "            plane[p] ^= t0;\n"
    "            t0 = u;\n"
    "        }\n"
    "    }\n"
    "    plane[0] = ones, plane[1] = twos, plane[2] = fours, plane[3] = eights;\n"
    "}\n\n"
    "/* pred [m] of an evaluated block: the first class of maximal count, bit-sliced */\n"
    "static void ln_argmax(const ln_vec *v, int m, int *pred)\n"
    "{\n"
    "    ln_vec best[LN_PLANES + 4], cnt[LN_PLANES + 4], idx[LN_CLASS_BITS + 1];\n"
    "    ln_count(v, 0, best);\n"
    "    for (int b = 0; b <= LN_CLASS_BITS; b++)\n"
    "        idx[b] = v[0];\n"
    "    for (int k = 1; k < LN_CLASSES; k++) {\n"
    "        ln_vec gt = v[0], eq = ~v[0];\n"
    "        ln_count(v, k, cnt);\n"
    "        for (int p = LN_PLANES - 1; p >= 0; p--) {\n"
    "            gt |= eq & cnt[p] & ~best[p];\n"
    "            eq &= ~(cnt[p] ^ best[p]);\n"
    "        }\n"
    "        for (int p = 0; p < LN_PLANES; p++)\n"
    "            best[p] ^= (best[p] ^ cnt[p]) & gt;\n"
    "        for (int b = 0; b < LN_CLASS_BITS; b++)\n"
    "            idx[b] = (k >> b) & 1 ? idx[b] | gt : idx[b] & ~gt;\n"
    "    }\n"
    "    for (int s = 0; s < m; s++) {\n"
    "        int k = 0;\n"
    "        for (int b = 0; b < LN_CLASS_BITS; b++)\n"
    "            k |= (int)((LN_WORD(idx[b], s / 64) >> (s % 64)) & 1) << b;\n"
    "        pred[s] = k;\n"
    "    }\n"
    "}\n\n"
    "/* predictions pred [n] of rows x [n][LN_INPUTS]; 0, -1 if out of memory, -2 if an x is\n"
    " * NaN or infinite (pred then holds the rows before its block) */\n"
    "int logicnet_predict(long n, const float *x, int *pred)\n"
    "{\n"
    "    unsigned char *raw = malloc(LN_SLOTS * sizeof(ln_vec) + 64);\n"
    "    if (!raw)\n"
    "        return -1;\n"
    "    ln_vec *v = (ln_vec *)(raw + (64 - (uintptr_t)raw % 64) % 64); /* aligned */\n"
    "    for (int l = 0; l < LN_LANES; l++)\n"
    "        LN_WORD(v[0], l) = 0;\n"
    "    for (long off = 0; off < n; off += 64 * LN_LANES) {\n"
    "        int m = n - off < 64 * LN_LANES ? (int)(n - off) : 64 * LN_LANES;\n"
    "        if (ln_binarize(x + off * LN_INPUTS, m, v)) {\n"
    "            free(raw);\n"
    "            return -2;\n"
    "        }\n"
    "        logicnet_eval(v);\n"
    "        ln_argmax(v, m, pred + off);\n"
    "    }\n"
    "    free(raw);\n"
    "    return 0;\n"
    "}\n\n";
static const char c_main[] =
    "#ifdef LOGICNET_MAIN\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include <time.h>\n\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    size_t cap = 1 << 16, len = 0, got;\n"
    "    float *x = malloc(cap * sizeof *x);\n"
    "    while (x && (got = fread(x + len, sizeof *x, cap - len, stdin)) > 0)\n"
    "        if ((len += got) == cap) {\n"
    "            float *y = realloc(x, 2 * cap * sizeof *x);\n"
    "            if (!y)\n"
    "                free(x);\n"
    "            x = y;\n"
    "            cap *= 2;\n"
    "        }\n"
    "    long n = (long)(len / LN_INPUTS);\n"
    "    int *pred = malloc((n > 0 ? (size_t)n : 1) * sizeof *pred);\n"
    "    if (!x || !pred || n < 1 || len % LN_INPUTS) {\n"
    "        fprintf(stderr, \"logicnet: expected rows of %d float32 values on stdin\\n\",\n"
    "                LN_INPUTS);\n"
    "        return 1;\n"
    "    }\n"
    "    int rc = logicnet_predict(n, x, pred);\n"
    "    if (rc) {\n"
    "        fprintf(stderr, \"logicnet: %s\\n\", rc == -1 ? \"out of memory\" : \"NaN or Inf in x\");\n"
    "    } else if (argc > 1 && !strcmp(argv[1], \"--bench\")) {\n"
    "        long reps = 0;\n"
    "        double sec;\n"
    "        clock_t t0 = clock();\n"
    "        do {\n"
    "            logicnet_predict(n, x, pred);\n"
    "            reps++;\n"
    "            sec = (double)(clock() - t0) / CLOCKS_PER_SEC;\n"
    "        } while (sec < 1.0);\n"
    "        printf(\"samples_per_s %.6g\\n\", (double)n * reps / sec);\n"
    "    } else {\n"
    "        for (long i = 0; i < n; i++)\n"
    "            printf(\"%d\\n\", pred[i]);\n"
    "    }\n"
    "    free(x);\n"
    "    free(pred);\n"
    "    return rc ? 1 : 0;\n"
    "}\n"
    "#endif\n";

/* a float as an exact C99 literal (hexadecimal; NAN, infinities through HUGE_VALF) */
static void put_float(FILE *f, float x)
{
    if (isnan(x))
        fputs("NAN", f);
    else if (isinf(x))
        fputs(x > 0 ? "HUGE_VALF" : "-HUGE_VALF", f);
    else
        fprintf(f, "%af", (double)x);
}

static void emit_c(const da_logic_circuit *c, const char *name, FILE *f)
{
    int class_bits = 0, group16 = (c->group + 15) / 16 * 16;
    while ((1L << class_bits) < c->n_classes)
        class_bits++;
    fprintf(f, "/* A trained logic gate network compiled by diffalg (da_logic_circuit_export_c):\n"
               " * %d gates (of %ld neurons), %d input bits, %d classes x %d outputs.\n"
               " * Input bit t * LN_INPUTS + i is x[i] > ln_thr[t]; class scores are the\n"
               " * numbers of true outputs per group; the prediction is the first maximum.\n"
               " * Values live in LN_SLOTS slots of 64 LN_LANES samples (a slot is reused once\n"
               " * its node has no reader left). Build with -DLOGICNET_MAIN for a program\n"
               " * reading float32 rows on stdin; -DLN_PORTABLE for plain C99 words. */\n",
            c->n_gates, c->gates_before, c->n_bits, c->n_classes, c->group);
    fputs("#include <math.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n\n", f);
    fprintf(f, "#define LN_INPUTS %d\n#define LN_THRESHOLDS %d\n#define LN_BITS %d\n"
               "#define LN_CLASSES %d\n#define LN_GROUP16 %d\n#define LN_PLANES %d\n"
               "#define LN_CLASS_BITS %d\n#define LN_SLOTS %d\n\n", c->n_inputs,
            c->n_thresholds, c->n_bits, c->n_classes, group16, c->planes, class_bits,
            c->n_slots);
    fputs(c_types, f);
    fputs("/* the thresholds as floats: for a float x, x > ln_thr[t] exactly when x exceeds the\n"
          " * network's (double) threshold t */\nstatic const float ln_thr[LN_THRESHOLDS] = {", f);
    for (int t = 0; t < c->n_thresholds; t++) {
        fputs(t ? ", " : "", f);
        put_float(f, c->thr_f[t]);
    }
    fputs("};\n\n/* outputs of each class: slot * 2 + negated (slot 0 is the constant 0), padded\n"
          " * with false to LN_GROUP16 */\n"
          "static const int32_t ln_out[LN_CLASSES * LN_GROUP16] = {", f);
    for (int o = 0; o < c->n_classes * group16; o++) {
        int k = o / group16, i = o % group16;
        fprintf(f, "%s%d", o % 12 ? ", " : (o ? ",\n    " : "\n    "),
                i < c->group ? c->out_slot[k * c->group + i] : 0);
    }
    fputs("};\n\n", f);
    /* the gates in functions of at most C_PART_GATES statements (compile time grows
     * faster than linearly with the size of a function) */
    int parts = (c->n_gates + C_PART_GATES - 1) / C_PART_GATES;
    for (int part = 0; part < parts; part++) {
        fprintf(f, "static void ln_gates%d(ln_vec *v)\n{\n", part);
        for (int g = part * C_PART_GATES; g < c->n_gates && g < (part + 1) * C_PART_GATES; g++)
            fprintf(f, "    v[%d] = v[%d] %s v[%d];\n", c->steps[g].y, c->steps[g].a,
                    op_c[c->gates[g].op], c->steps[g].b);
        fputs("}\n\n", f);
    }
    fputs("/* v [LN_SLOTS]: v[0] = 0, v[1 + i] = input bit i; computes every gate (the\n"
          " * outputs end in the slots of ln_out) */\nvoid logicnet_eval(ln_vec *v)\n{\n    (void)v;\n", f);
    for (int part = 0; part < parts; part++)
        fprintf(f, "    ln_gates%d(v);\n", part);
    fputs("}\n\n", f);
    fputs(c_predict, f);
    fputs(c_main, f);
}

int da_logic_circuit_export_c(const da_logic_circuit *c, const char *path)
{
    return write_text("da_logic_circuit_export_c", c, NULL, path, emit_c);
}

/* ---- Verilog ---- */

static void verilog_node(const da_logic_circuit *c, int node, char *buf, size_t size)
{
    if (node == 0)
        snprintf(buf, size, "1'b0");
    else if (node <= c->n_bits)
        snprintf(buf, size, "x[%d]", node - 1);
    else
        snprintf(buf, size, "g%d", node - c->n_bits - 1);
}

static void emit_verilog(const da_logic_circuit *c, const char *name, FILE *f)
{
    int yw = 1, pw = c->planes;
    while ((1 << yw) < c->n_classes)
        yw++;
    char a[32], b[32];
    fprintf(f, "// A trained logic gate network compiled by diffalg\n"
               "// (da_logic_circuit_export_verilog): %d gates (of %ld neurons). x: the binarized\n"
               "// inputs (bit t * %d + i = input i above threshold t); y: the predicted class\n"
               "// (first maximum of the per-class counts of true outputs). Combinational.\n",
            c->n_gates, c->gates_before, c->n_inputs);
    fprintf(f, "module %s (\n    input  wire [%d:0] x,\n    output wire [%d:0] y\n);\n", name,
            c->n_bits - 1, yw - 1);
    for (int g = 0; g < c->n_gates; g++) {
        verilog_node(c, c->gates[g].a, a, sizeof a);
        verilog_node(c, c->gates[g].b, b, sizeof b);
        fprintf(f, "    wire g%d = %s %s %s;\n", g, a, op_c[c->gates[g].op], b);
    }
    for (int o = 0; o < c->n_out; o++) {
        verilog_node(c, c->out[o] >> 1, a, sizeof a);
        fprintf(f, "    wire o%d = %s%s;\n", o, c->out[o] & 1 ? "~" : "", a);
    }
    for (int k = 0; k < c->n_classes; k++) {
        fprintf(f, "    wire [%d:0] c%d =", pw - 1, k);
        for (int o = 0; o < c->group; o++)
            fprintf(f, "%s o%d", o ? (o % 16 ? " +" : "\n        +") : "", k * c->group + o);
        fputs(";\n", f);
    }
    fprintf(f, "    wire [%d:0] m0 = c0;\n    wire [%d:0] i0 = %d'd0;\n", pw - 1, yw - 1, yw);
    for (int k = 1; k < c->n_classes; k++)
        fprintf(f, "    wire [%d:0] m%d = (c%d > m%d) ? c%d : m%d;\n"
                   "    wire [%d:0] i%d = (c%d > m%d) ? %d'd%d : i%d;\n",
                pw - 1, k, k, k - 1, k, k - 1, yw - 1, k, k, k - 1, yw, k, k - 1);
    fprintf(f, "    assign y = i%d;\nendmodule\n", c->n_classes - 1);
}

static int valid_identifier(const char *s)
{
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return 0;
    return strlen(s) < 256;
}

int da_logic_circuit_export_verilog(const da_logic_circuit *c, const char *module,
                                    const char *path)
{
    if (!valid_identifier(module))
        return da_set_error(DA_EINVAL, "da_logic_circuit_export_verilog: module name '%s' "
                            "is not a Verilog identifier", module ? module : "(null)");
    return write_text("da_logic_circuit_export_verilog", c, module, path, emit_verilog);
}
