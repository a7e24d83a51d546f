/* logic_export.c - standalone C and synthesizable Verilog from a compiled logic gate
 * network (logic_compile.h). The text is built in memory and written atomically. */
#define _GNU_SOURCE /* open_memstream */
#include <ctype.h>
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

static const char c_predict[] =
    "/* predictions pred [n] of rows x [n][LN_INPUTS]; 0, or -1 if out of memory */\n"
    "int logicnet_predict(long n, const float *x, int *pred)\n"
    "{\n"
    "    uint64_t *v = calloc(LN_NODES, sizeof *v), *in = calloc(LN_BITS, sizeof *in);\n"
    "    int best[64];\n"
    "    if (!v || !in) {\n"
    "        free(v);\n"
    "        free(in);\n"
    "        return -1;\n"
    "    }\n"
    "    for (long off = 0; off < n; off += 64) {\n"
    "        int m = n - off < 64 ? (int)(n - off) : 64;\n"
    "        for (int i = 0; i < LN_BITS; i++)\n"
    "            in[i] = 0;\n"
    "        for (int s = 0; s < m; s++) {\n"
    "            uint64_t bit = (uint64_t)1 << s;\n"
    "            for (int t = 0; t < LN_THRESHOLDS; t++)\n"
    "                for (int i = 0; i < LN_INPUTS; i++) /* branch-free */\n"
    "                    in[t * LN_INPUTS + i] |=\n"
    "                        x[(off + s) * LN_INPUTS + i] > ln_thresholds[t] ? bit : 0;\n"
    "        }\n"
    "        logicnet_eval(in, v);\n"
    "        for (int k = 0; k < LN_CLASSES; k++) {\n"
    "            uint64_t plane[LN_PLANES] = {0};\n"
    "            for (int o = 0; o < LN_GROUP; o++) { /* bit-sliced popcount */\n"
    "                int32_t r = ln_out[k * LN_GROUP + o];\n"
    "                uint64_t carry = v[r >> 1] ^ ((uint64_t)0 - (uint64_t)(r & 1));\n"
    "                for (int p = 0; carry; p++) {\n"
    "                    uint64_t t = plane[p] & carry;\n"
    "                    plane[p] ^= carry;\n"
    "                    carry = t;\n"
    "                }\n"
    "            }\n"
    "            for (int s = 0; s < m; s++) {\n"
    "                int count = 0;\n"
    "                for (int p = 0; p < LN_PLANES; p++)\n"
    "                    count |= (int)((plane[p] >> s) & 1) << p;\n"
    "                if (k == 0 || count > best[s]) {\n"
    "                    best[s] = count;\n"
    "                    pred[off + s] = k;\n"
    "                }\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "    free(v);\n"
    "    free(in);\n"
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
    "    if (argc > 1 && !strcmp(argv[1], \"--bench\")) {\n"
    "        long reps = 0;\n"
    "        double sec;\n"
    "        clock_t t0 = clock();\n"
    "        do {\n"
    "            if (logicnet_predict(n, x, pred))\n"
    "                return 1;\n"
    "            reps++;\n"
    "            sec = (double)(clock() - t0) / CLOCKS_PER_SEC;\n"
    "        } while (sec < 1.0);\n"
    "        printf(\"samples_per_s %.6g\\n\", (double)n * reps / sec);\n"
    "    } else {\n"
    "        if (logicnet_predict(n, x, pred))\n"
    "            return 1;\n"
    "        for (long i = 0; i < n; i++)\n"
    "            printf(\"%d\\n\", pred[i]);\n"
    "    }\n"
    "    free(x);\n"
    "    free(pred);\n"
    "    return 0;\n"
    "}\n"
    "#endif\n";

static void emit_c(const da_logic_circuit *c, const char *name, FILE *f)
{
    int first = c->n_bits + 1;
    fprintf(f, "/* A trained logic gate network compiled by diffalg (da_logic_circuit_export_c):\n"
               " * %d gates (of %ld neurons), %d input bits, %d classes x %d outputs.\n"
               " * Input bit t * LN_INPUTS + i is x[i] > ln_thresholds[t]; class scores are the\n"
               " * numbers of true outputs per group; the prediction is the first maximum.\n"
               " * Build with -DLOGICNET_MAIN for a program reading float32 rows on stdin. */\n",
            c->n_gates, c->gates_before, c->n_bits, c->n_classes, c->group);
    fputs("#include <stdint.h>\n#include <stdlib.h>\n\n", f);
    fprintf(f, "#define LN_INPUTS %d\n#define LN_THRESHOLDS %d\n#define LN_BITS %d\n"
               "#define LN_CLASSES %d\n#define LN_GROUP %d\n#define LN_PLANES %d\n"
               "#define LN_NODES %d\n\n", c->n_inputs, c->n_thresholds, c->n_bits,
            c->n_classes, c->group, c->planes, first + c->n_gates);
    fputs("static const double ln_thresholds[LN_THRESHOLDS] = {", f);
    for (int t = 0; t < c->n_thresholds; t++)
        fprintf(f, "%s%.17g", t ? ", " : "", c->thresholds[t]);
    fputs("};\n\n/* outputs: node * 2 + negated (node 0 is the constant 0) */\n"
          "static const int32_t ln_out[LN_CLASSES * LN_GROUP] = {", f);
    for (int o = 0; o < c->n_out; o++)
        fprintf(f, "%s%d", o % 12 ? ", " : (o ? ",\n    " : "\n    "), c->out[o]);
    fputs("};\n\n", f);
    /* the gates in functions of at most C_PART_GATES statements (compile time grows
     * faster than linearly with the size of a function) */
    int parts = (c->n_gates + C_PART_GATES - 1) / C_PART_GATES;
    for (int part = 0; part < parts; part++) {
        fprintf(f, "static void ln_gates%d(uint64_t *v)\n{\n", part);
        for (int g = part * C_PART_GATES; g < c->n_gates && g < (part + 1) * C_PART_GATES; g++)
            fprintf(f, "    v[%d] = v[%d] %s v[%d];\n", first + g, c->gates[g].a,
                    op_c[c->gates[g].op], c->gates[g].b);
        fputs("}\n\n", f);
    }
    fputs("/* v [LN_NODES]: v[0] = 0, v[1 + i] = input bit i, then the gates */\n"
          "void logicnet_eval(const uint64_t *in, uint64_t *v)\n{\n    v[0] = 0;\n"
          "    for (int i = 0; i < LN_BITS; i++)\n        v[1 + i] = in[i];\n", f);
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
