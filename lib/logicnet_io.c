/* logicnet_io.c - the saved-network file format of logicnet.h: little-endian fields,
 * CRC-32 (zlib) trailer, atomic writes through da_file_write_atomic. Writes version 2;
 * reads versions 1 (dense networks) and 2 (optionally with convolutional stages). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "io.h"
#include "alloc.h"
#include "logicnet_impl.h"

#define MAGIC "DALOGIC\n"
#define VERSION 2
#define HEADER_BYTES 56 /* magic, version, 5 sizes, connections, n_conv, tau, gf */
#define STAGE_FIELDS 6  /* kind, out_c, depth, size, stride, pad */

/* ---- little-endian cursor ---- */

typedef struct {
    unsigned char *p;
    size_t pos, size;
} cursor;

static void put_u32(cursor *c, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        c->p[c->pos++] = (unsigned char)(v >> (8 * i));
}

static void put_f64(cursor *c, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    for (int i = 0; i < 8; i++)
        c->p[c->pos++] = (unsigned char)(u >> (8 * i));
}

/* readers return 0 past the end; callers check the length first */
static uint32_t get_u32(cursor *c)
{
    uint32_t v = 0;
    if (c->pos + 4 > c->size)
        return 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)c->p[c->pos++] << (8 * i);
    return v;
}

static double get_f64(cursor *c)
{
    uint64_t u = 0;
    double v;
    if (c->pos + 8 > c->size)
        return 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)c->p[c->pos++] << (8 * i);
    memcpy(&v, &u, sizeof v);
    return v;
}

static size_t file_size(long n_thresholds, long n_layers, long width)
{
    return HEADER_BYTES + 8 * n_thresholds + n_layers * width * (4 + 4 + 8 * 16) + 4;
}

/* bytes of the convolutional part: image size, stage specs, leaves and logits */
static size_t conv_bytes(int n_conv, const da_logic_conv_spec *sp)
{
    if (!n_conv)
        return 0;
    size_t n = 8 + 4 * STAGE_FIELDS * (size_t)n_conv;
    for (int s = 0; s < n_conv; s++)
        if (sp[s].kind == DA_LOGIC_CONV_TREE) {
            size_t leaves = (size_t)1 << sp[s].depth;
            n += (size_t)sp[s].out_c * (leaves * 3 * 4 + (leaves - 1) * 16 * 8);
        }
    return n;
}

static uint32_t crc_of(const unsigned char *p, size_t n)
{
    return (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), p, n);
}

int da_logicnet_serialize(const da_logicnet *net, void **data, size_t *size)
{
    if (!net || !data || !size)
        return da_set_error(DA_EINVAL, "da_logicnet_serialize: NULL argument");
    da_logic_conv_spec sp[DA_LOGICNET_MAX_CONV];
    for (int s = 0; s < net->n_conv; s++)
        sp[s] = net->conv[s]->spec;
    size_t n = file_size(net->n_thresholds, net->n_layers, net->width) +
               conv_bytes(net->n_conv, sp);
    cursor c = {da_malloc(n), 0, n};
    if (!c.p)
        return da_set_error(DA_ENOMEM, "da_logicnet_serialize: out of memory");
    memcpy(c.p, MAGIC, 8);
    c.pos = 8;
    put_u32(&c, VERSION);
    put_u32(&c, (uint32_t)net->n_inputs);
    put_u32(&c, (uint32_t)net->n_thresholds);
    put_u32(&c, (uint32_t)net->n_layers);
    put_u32(&c, (uint32_t)net->width);
    put_u32(&c, (uint32_t)net->n_classes);
    put_u32(&c, (uint32_t)net->connections);
    put_u32(&c, (uint32_t)net->n_conv);
    put_f64(&c, net->tau);
    put_f64(&c, net->grad_factor);
    for (int t = 0; t < net->n_thresholds; t++)
        put_f64(&c, net->thresholds[t]);
    if (net->n_conv) {
        put_u32(&c, (uint32_t)net->image_h);
        put_u32(&c, (uint32_t)net->image_w);
    }
    for (int s = 0; s < net->n_conv; s++) {
        const da_logic_conv_spec *p = &sp[s];
        uint32_t f[STAGE_FIELDS] = {(uint32_t)p->kind, (uint32_t)p->out_c, (uint32_t)p->depth,
                                    (uint32_t)p->size, (uint32_t)p->stride, (uint32_t)p->pad};
        for (int i = 0; i < STAGE_FIELDS; i++)
            put_u32(&c, f[i]);
    }
    for (int s = 0; s < net->n_conv; s++) {
        const da_logic_conv *L = net->conv[s];
        if (!L->w)
            continue;
        for (long i = 0; i < (long)L->out_c * L->n_leaves * 3; i++)
            put_u32(&c, (uint32_t)L->leaf[i]);
        const double *w = L->w->data;
        for (long i = 0; i < L->w->size; i++)
            put_f64(&c, w[i]);
    }
    for (int l = 0; l < net->n_layers; l++) {
        for (int j = 0; j < net->width; j++)
            put_u32(&c, (uint32_t)net->ia[l][j]);
        for (int j = 0; j < net->width; j++)
            put_u32(&c, (uint32_t)net->ib[l][j]);
        const double *w = net->w[l]->data;
        for (long i = 0; i < net->w[l]->size; i++)
            put_f64(&c, w[i]);
    }
    put_u32(&c, crc_of(c.p, n - 4));
    *data = c.p;
    *size = n;
    return DA_OK;
}

static da_logicnet *format_error(const char *msg)
{
    da_set_error(DA_EFORMAT, "da_logicnet_load: %s", msg);
    return NULL;
}

/* the header fields after the magic and version, range-checked */
typedef struct {
    uint32_t n_inputs, n_thresholds, n_layers, width, n_classes, connections, n_conv;
    double tau, grad_factor;
} header;

static int header_ok(const header *h)
{
    return h->n_inputs >= 1 && h->n_thresholds >= 1 &&
           h->n_thresholds <= DA_LOGICNET_MAX_THRESHOLDS && h->n_layers >= 1 &&
           h->n_layers <= DA_LOGICNET_MAX_LAYERS && h->width >= 1 &&
           h->width <= DA_LOGICNET_MAX_WIDTH && h->n_classes >= 1 &&
           h->width % h->n_classes == 0 && (uint64_t)h->n_inputs * h->n_thresholds <=
           DA_LOGICNET_MAX_BITS && h->connections <= DA_LOGIC_UNIQUE && isfinite(h->tau) &&
           h->tau > 0 && isfinite(h->grad_factor) && h->grad_factor > 0 &&
           h->n_conv <= DA_LOGICNET_MAX_CONV;
}

/* the stage specs after the thresholds (the length is checked by the caller), their
 * chain over the image filled in; 0 if they do not describe valid stages */
static int read_stages(cursor *c, const header *h, int *image, da_logic_conv_spec *sp)
{
    image[0] = (int)get_u32(c);
    image[1] = (int)get_u32(c);
    for (uint32_t s = 0; s < h->n_conv; s++) {
        uint32_t f[STAGE_FIELDS];
        for (int i = 0; i < STAGE_FIELDS; i++)
            f[i] = get_u32(c);
        if (f[0] > DA_LOGIC_CONV_OR_POOL)
            return 0;
        for (int i = 1; i < STAGE_FIELDS; i++)
            if (f[i] > DA_LOGIC_CONV_MAX_DIM)
                return 0;
        sp[s] = (da_logic_conv_spec){(da_logic_conv_kind)f[0], 0, 0, 0, (int)f[1], (int)f[2],
                                     (int)f[3], (int)f[4], (int)f[5]};
    }
    long out = 0;
    if (image[0] < 1 || image[1] < 1 || (uint64_t)image[0] * (uint64_t)image[1] != h->n_inputs ||
        da_logicnet_conv_chain((int)h->n_conv, sp, (int)h->n_thresholds, image[0], image[1],
                               sp, &out) || out > DA_LOGICNET_MAX_BITS)
        return 0;
    for (uint32_t s = 0; s < h->n_conv; s++) /* a pool as written: out_c = in_c, depth 0 */
        if (sp[s].kind == DA_LOGIC_CONV_OR_POOL && (sp[s].out_c != sp[s].in_c || sp[s].depth))
            return 0;
    return 1;
}

/* the leaves and logits of the tree stages; 0 if some leaf or logit is invalid */
static int read_stage_params(cursor *c, da_logicnet *net)
{
    int ok = 1;
    for (int s = 0; s < net->n_conv && ok; s++) {
        da_logic_conv *L = net->conv[s];
        if (!L->w)
            continue;
        for (long i = 0; i < (long)L->out_c * L->n_leaves * 3; i++)
            L->leaf[i] = (int)get_u32(c);
        double *w = L->w->data;
        for (long i = 0; i < L->w->size; i++)
            w[i] = get_f64(c);
        ok = !da_logic_conv_check_leaves(L) && da_all_finite(w, L->w->size);
    }
    return ok;
}

da_logicnet *da_logicnet_deserialize(const void *data, size_t size)
{
    if (!data) {
        da_set_error(DA_EINVAL, "da_logicnet_deserialize: NULL data");
        return NULL;
    }
    cursor c = {(unsigned char *)data, 8, size};
    if (size < HEADER_BYTES + 4 || memcmp(data, MAGIC, 8))
        return format_error("not a logic network file (bad magic or too short)");
    uint32_t version = get_u32(&c);
    if (version != 1 && version != VERSION)
        return format_error("unsupported version (this library reads versions 1 and 2)");
    header h;
    h.n_inputs = get_u32(&c);
    h.n_thresholds = get_u32(&c);
    h.n_layers = get_u32(&c);
    h.width = get_u32(&c);
    h.n_classes = get_u32(&c);
    h.connections = get_u32(&c);
    h.n_conv = get_u32(&c); /* version 1: reserved, 0 */
    h.tau = get_f64(&c);
    h.grad_factor = get_f64(&c);
    if (!header_ok(&h) || (version == 1 && h.n_conv))
        return format_error("header fields out of range");
    da_logic_conv_spec sp[DA_LOGICNET_MAX_CONV];
    int image[2] = {0, 0};
    size_t pre = HEADER_BYTES + 8 * (size_t)h.n_thresholds;
    if (h.n_conv) {
        if (size < pre + 8 + 4 * STAGE_FIELDS * (size_t)h.n_conv + 4)
            return format_error("wrong length (truncated or trailing bytes)");
        cursor st = {(unsigned char *)data, pre, size};
        if (!read_stages(&st, &h, image, sp))
            return format_error("convolutional stages out of range");
    }
    if (size != file_size(h.n_thresholds, h.n_layers, h.width) + conv_bytes((int)h.n_conv, sp))
        return format_error("wrong length (truncated or trailing bytes)");
    cursor tail = {(unsigned char *)data, size - 4, size};
    if (get_u32(&tail) != crc_of(data, size - 4))
        return format_error("CRC mismatch (corrupt file)");
    da_logicnet *net = da_logicnet_alloc((int)h.n_inputs, (int)h.n_thresholds,
                                         (int)h.n_layers, (int)h.width, (int)h.n_classes,
                                         (int)h.n_conv, sp, image[0], image[1]);
    if (!net)
        return NULL;
    net->tau = h.tau;
    net->grad_factor = h.grad_factor;
    net->connections = (da_logic_connections)h.connections;
    for (uint32_t t = 0; t < h.n_thresholds; t++)
        net->thresholds[t] = get_f64(&c);
    int ok = da_all_finite(net->thresholds, net->n_thresholds);
    if (h.n_conv) {
        c.pos += 8 + 4 * STAGE_FIELDS * (size_t)h.n_conv;
        ok = ok && read_stage_params(&c, net);
    }
    for (int l = 0; l < net->n_layers && ok; l++) {
        uint32_t in = (uint32_t)net->dims[l];
        for (int j = 0; j < net->width; j++) {
            uint32_t a = get_u32(&c);
            ok &= a < in;
            net->ia[l][j] = (int)a;
        }
        for (int j = 0; j < net->width; j++) {
            uint32_t b = get_u32(&c);
            ok &= b < in;
            net->ib[l][j] = (int)b;
        }
        double *w = net->w[l]->data;
        for (long i = 0; i < net->w[l]->size; i++)
            w[i] = get_f64(&c);
        ok &= da_all_finite(w, net->w[l]->size);
    }
    if (!ok) {
        da_logicnet_free(net);
        return format_error("connection index or leaf out of range or non-finite value");
    }
    return net;
}

int da_logicnet_save(const da_logicnet *net, const char *path)
{
    if (!net || !path)
        return da_set_error(DA_EINVAL, "da_logicnet_save: NULL net or path");
    void *data;
    size_t size;
    int rc = da_logicnet_serialize(net, &data, &size);
    if (rc)
        return rc;
    rc = da_file_write_atomic(path, data, size);
    da_free(data);
    return rc;
}

da_logicnet *da_logicnet_load(const char *path)
{
    if (!path) {
        da_set_error(DA_EINVAL, "da_logicnet_load: NULL path");
        return NULL;
    }
    void *data;
    size_t size;
    if (da_file_read(path, &data, &size))
        return NULL;
    da_logicnet *net = da_logicnet_deserialize(data, size);
    da_free(data);
    return net;
}
