/* logicnet_conv.c - the convolutional stages of a logic gate network (logicnet.h,
 * logic_conv.h; Petersen et al., NeurIPS 2024): their geometry chain, the training
 * forward and backward through the network's workspace (batch-major stage activations
 * ws_conv, kept for the backward) and the hard forward used by predictions. */
#include <string.h>

#include "logicnet_impl.h"
#include "alloc.h"

int da_logicnet_conv_chain(int n_conv, const da_logic_conv_spec *conv, int channels,
                           int image_h, int image_w, da_logic_conv_spec *filled,
                           long *out_size)
{
    int c = channels, h = image_h, w = image_w;
    for (int s = 0; s < n_conv; s++) {
        da_logic_conv_spec sp = conv[s];
        sp.in_c = c, sp.in_h = h, sp.in_w = w;
        int rc = da_logic_conv_shape(&sp, &c, &h, &w);
        if (rc)
            return rc;
        if (filled)
            filled[s] = sp;
    }
    if (out_size)
        *out_size = (long)c * h * w;
    return DA_OK;
}

void da_logicnet_conv_sizes(const da_logicnet *net, long *acts, long *largest, long *max_w)
{
    *acts = *largest = *max_w = 0;
    for (int s = 0; s < net->n_conv; s++) {
        const da_logic_conv *L = net->conv[s];
        long in = da_logic_conv_in_size(L), out = da_logic_conv_out_size(L);
        *acts += in + (s == net->n_conv - 1 ? out : 0);
        *largest = in > *largest ? in : *largest;
        *largest = out > *largest ? out : *largest;
        if (L->w && L->w->size > *max_w)
            *max_w = L->w->size;
    }
}

/* stage s's input [ws_batch][in] in the workspace (s = n_conv: the output) */
static double *stage_act(const da_logicnet *net, int s)
{
    long off = 0;
    for (int i = 0; i < s; i++)
        off += da_logic_conv_in_size(net->conv[i]);
    return net->ws_conv + (size_t)off * net->ws_batch;
}

int da_logicnet_conv_forward(da_logicnet *net, int batch, const double *bits, int hard,
                             const double **out)
{
    memcpy(stage_act(net, 0), bits, (size_t)batch * net->n_bits * sizeof *bits);
    for (int s = 0; s < net->n_conv; s++) {
        int rc = da_logic_conv_forward(net->conv[s], NULL, batch, stage_act(net, s), hard,
                                       stage_act(net, s + 1));
        if (rc)
            return rc;
    }
    *out = stage_act(net, net->n_conv);
    return DA_OK;
}

int da_logicnet_conv_backward(da_logicnet *net, int batch, const double *g, double *gbits)
{
    double *gy = net->ws_conv_grad[0], *gx = net->ws_conv_grad[1];
    int d0 = net->dims[0];
    for (int s = 0; s < batch; s++)
        for (int i = 0; i < d0; i++)
            gy[(size_t)s * d0 + i] = g[(size_t)i * batch + s];
    for (int s = net->n_conv - 1; s >= 0; s--) {
        const da_logic_conv *L = net->conv[s];
        double *dst = s > 0 ? gx : gbits, *gw = L->w ? net->ws_conv_gw : NULL;
        double *grad = L->w ? da_tensor_grad(L->w) : NULL;
        if (L->w && !grad)
            return da_set_error(DA_ENOMEM, "da_logicnet_backward: out of memory");
        int rc = da_logic_conv_backward(L, NULL, batch, stage_act(net, s), 0, gy, dst, gw);
        if (rc)
            return rc;
        for (long i = 0; gw && i < L->w->size; i++)
            grad[i] += gw[i];
        long n = (long)batch * da_logic_conv_in_size(L);
        if (dst && L->w && net->grad_factor != 1)
            for (long i = 0; i < n; i++)
                dst[i] *= net->grad_factor;
        double *t = gy;
        gy = gx;
        gx = t;
    }
    return DA_OK;
}

int da_logicnet_conv_run(const da_logicnet *net, int batch, double *const buf[2],
                         const double **out)
{
    for (int s = 0; s < net->n_conv; s++) {
        int rc = da_logic_conv_forward(net->conv[s], NULL, batch, buf[s & 1], 1,
                                       buf[(s + 1) & 1]);
        if (rc)
            return rc;
    }
    *out = buf[net->n_conv & 1];
    return DA_OK;
}
