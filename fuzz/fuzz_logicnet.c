/* fuzz_logicnet.c - libFuzzer target: the trained logic-net loader of lib/logicnet.h
 * (da_logicnet_deserialize, and da_logicnet_load on the same bytes). Inputs are also
 * tried "repaired" (CRC-32 trailer rewritten) so that mutations reach the checks behind
 * the CRC. A loaded network must serialize back to the same bytes (a version 1 file: up to
 * the version field and the CRC) and predict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fuzz.h"
#include "logicnet.h"

static void check_net(da_logicnet *net, const uint8_t *data, size_t size)
{
    void *out = NULL;
    size_t out_size = 0;
    FUZZ_CHECK(da_logicnet_serialize(net, &out, &out_size) == DA_OK);
    FUZZ_CHECK(out_size == size && !memcmp(out, data, 8) && !memcmp((uint8_t *)out + 12,
                                                                  data + 12, size - 16));
    /* a version 1 file is written back as version 2 (same layout) */
    FUZZ_CHECK(data[8] == 1 ? ((uint8_t *)out)[8] == 2 : !memcmp(out, data, size));
    free(out);
    long conv_work = 0; /* positions x gates (or window inputs) of the stages */
    for (int s = 0; s < net->n_conv; s++)
        conv_work += da_logic_conv_out_size(net->conv[s]) *
                     (net->conv[s]->n_gates + (long)net->conv[s]->spec.size * net->conv[s]->spec.size);
    if (net->n_inputs <= 64 && net->n_bits <= 4096 && (long)net->n_layers * net->width <= 4096 &&
        conv_work <= 65536) {
        float x[2 * 64];
        int pred[2];
        for (int i = 0; i < 2 * net->n_inputs; i++)
            x[i] = (float)((i * 7) % 11) / 10.0f;
        FUZZ_CHECK(da_logicnet_predict(net, 2, x, pred, NULL) == DA_OK);
        FUZZ_CHECK(pred[0] >= 0 && pred[0] < net->n_classes);
    }
}

static void load(const uint8_t *data, size_t size)
{
    da_logicnet *net = da_logicnet_deserialize(data, size);
    if (!net) {
        fuzz_check_error(da_last_error_code());
        return;
    }
    check_net(net, data, size);
    da_logicnet_free(net);
    net = da_logicnet_load(fuzz_write_file(data, size));
    FUZZ_CHECK(net);
    da_logicnet_free(net);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load(data, size);
    if (size < 4)
        return 0;
    uint8_t *fixed = malloc(size);
    FUZZ_CHECK(fixed);
    memcpy(fixed, data, size);
    uint32_t crc = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), fixed, size - 4);
    for (int i = 0; i < 4; i++)
        fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    load(fixed, size);
    free(fixed);
    return 0;
}
