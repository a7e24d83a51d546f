/* io.c - atomic file writes and the checkpoint format (io.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "io.h"
#include "alloc.h"

#define MAGIC "DACKPT\r\n"
#define HEADER_BYTES 24
#define CRC_BYTES 4
#define TENSOR_HEADER_BYTES 24 /* u32 dtype, u32 ndim, u32 shape[4] */

/* ---- atomic writes ---- */

static int write_all(int fd, const unsigned char *p, size_t size)
{
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        size -= (size_t)w;
    }
    return 0;
}

/* fsync the directory holding path, so that the rename itself is durable */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? da_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : da_strndup(".", 1);
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    da_free(dir);
}

/* path followed by suffix, in a new da_malloc'd string (NULL: DA_ENOMEM recorded) */
static char *path_with(const char *path, const char *suffix)
{
    size_t len = strlen(path), extra = strlen(suffix);
    char *s = da_malloc(len + extra + 1);
    if (!s) {
        da_set_error(DA_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    memcpy(s, path, len);
    memcpy(s + len, suffix, extra + 1);
    return s;
}

/* Write the bytes to a new temporary file beside path (PATH.tmp.XXXXXX), fsync'd and
 * closed; *tmp receives its name (da_free it). On failure nothing is left behind. */
static int write_temp(const char *path, const void *data, size_t size, char **tmp)
{
    *tmp = path_with(path, ".tmp.XXXXXX");
    if (!*tmp)
        return DA_ENOMEM;
    int fd = mkstemp(*tmp);
    if (fd < 0) {
        int rc = da_set_error(DA_EIO, "%s: cannot create a temporary file: %s", path,
                              strerror(errno));
        da_free(*tmp);
        *tmp = NULL;
        return rc;
    }
    const char *what = NULL;
    if (write_all(fd, data, size))
        what = "write";
    else if (fchmod(fd, 0644))
        what = "chmod";
    else if (fsync(fd))
        what = "fsync";
    int err = errno;
    if (close(fd) && !what) {
        what = "close";
        err = errno;
    }
    if (what) {
        unlink(*tmp);
        da_free(*tmp);
        *tmp = NULL;
        return da_set_error(DA_EIO, "%s: %s failed: %s", path, what, strerror(err));
    }
    return DA_OK;
}

/* rename tmp over path (removing tmp on failure), then make the rename durable */
static int install_temp(const char *path, char *tmp)
{
    int rc = DA_OK;
    if (rename(tmp, path)) {
        rc = da_set_error(DA_EIO, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
    }
    da_free(tmp);
    if (!rc)
        sync_parent_dir(path);
    return rc;
}

int da_file_write_atomic(const char *path, const void *data, size_t size)
{
    if (!path || !path[0] || (!data && size))
        return da_set_error(DA_EINVAL, "da_file_write_atomic: NULL or empty argument");
    char *tmp;
    int rc = write_temp(path, data, size, &tmp);
    return rc ? rc : install_temp(path, tmp);
}

int da_file_read(const char *path, void **data, size_t *size)
{
    if (!path || !data || !size)
        return da_set_error(DA_EINVAL, "da_file_read: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return da_set_error(DA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return da_set_error(DA_EIO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = da_malloc(n + 1);
    if (!buf) {
        fclose(f);
        return da_set_error(DA_ENOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f) || got != n;
    fclose(f);
    if (bad) {
        da_free(buf);
        return da_set_error(DA_EIO, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return DA_OK;
}

/* ---- the in-memory checkpoint ---- */

typedef struct {
    char name[DA_CHECKPOINT_MAX_NAME + 1];
    size_t size;
    unsigned char *data; /* [size] */
} blob;

struct da_checkpoint {
    int n, cap;
    blob *blobs; /* [cap], first n used */
};

da_checkpoint *da_checkpoint_new(void)
{
    da_checkpoint *ck = da_calloc(1, sizeof *ck);
    if (!ck)
        da_set_error(DA_ENOMEM, "da_checkpoint_new: out of memory");
    return ck;
}

void da_checkpoint_free(da_checkpoint *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->n; i++)
        da_free(ck->blobs[i].data);
    da_free(ck->blobs);
    da_free(ck);
}

static blob *find(const da_checkpoint *ck, const char *name)
{
    for (int i = 0; i < ck->n; i++)
        if (!strcmp(ck->blobs[i].name, name))
            return &ck->blobs[i];
    return NULL;
}

void *da_checkpoint_put_alloc(da_checkpoint *ck, const char *name, size_t size)
{
    if (!ck || !name) {
        da_set_error(DA_EINVAL, "da_checkpoint_put: NULL checkpoint or name");
        return NULL;
    }
    size_t len = strlen(name);
    if (len < 1 || len > DA_CHECKPOINT_MAX_NAME) {
        da_set_error(DA_ERANGE, "da_checkpoint_put: name of %zu bytes (need 1..%d)", len,
                     DA_CHECKPOINT_MAX_NAME);
        return NULL;
    }
    unsigned char *data = da_calloc(size ? size : 1, 1);
    if (!data) {
        da_set_error(DA_ENOMEM, "da_checkpoint_put: out of memory for %zu bytes", size);
        return NULL;
    }
    blob *b = find(ck, name);
    if (!b) {
        if (ck->n == ck->cap) {
            int cap = ck->cap ? 2 * ck->cap : 8;
            blob *grown = da_realloc(ck->blobs, (size_t)cap * sizeof *grown);
            if (!grown) {
                da_free(data);
                da_set_error(DA_ENOMEM, "da_checkpoint_put: out of memory");
                return NULL;
            }
            ck->blobs = grown;
            ck->cap = cap;
        }
        b = &ck->blobs[ck->n++];
        memcpy(b->name, name, len + 1);
        b->data = NULL;
    }
    da_free(b->data);
    b->data = data;
    b->size = size;
    return data;
}

int da_checkpoint_put(da_checkpoint *ck, const char *name, const void *data, size_t size)
{
    if (!data && size)
        return da_set_error(DA_EINVAL, "da_checkpoint_put: data is NULL");
    void *dst = da_checkpoint_put_alloc(ck, name, size);
    if (!dst)
        return da_last_error_code();
    if (size)
        memcpy(dst, data, size);
    return DA_OK;
}

const void *da_checkpoint_get(const da_checkpoint *ck, const char *name, size_t *size)
{
    if (!ck || !name) {
        da_set_error(DA_EINVAL, "da_checkpoint_get: NULL checkpoint or name");
        return NULL;
    }
    const blob *b = find(ck, name);
    if (!b) {
        da_set_error(DA_EFORMAT, "checkpoint has no blob named '%s'", name);
        return NULL;
    }
    if (size)
        *size = b->size;
    return b->data;
}

int da_checkpoint_count(const da_checkpoint *ck) { return ck ? ck->n : 0; }

const char *da_checkpoint_name(const da_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->n ? ck->blobs[i].name : NULL;
}

/* ---- typed blobs ---- */

int da_checkpoint_put_tensor(da_checkpoint *ck, const char *name, const da_tensor *t)
{
    if (!t)
        return da_set_error(DA_EINVAL, "da_checkpoint_put_tensor: tensor is NULL");
    size_t bytes = (size_t)t->size * da_dtype_size(t->dtype);
    unsigned char *dst = da_checkpoint_put_alloc(ck, name, TENSOR_HEADER_BYTES + bytes);
    if (!dst)
        return da_last_error_code();
    uint32_t h[6] = {(uint32_t)t->dtype, (uint32_t)t->ndim};
    for (int i = 0; i < DA_MAX_DIMS; i++)
        h[2 + i] = (uint32_t)t->shape[i];
    memcpy(dst, h, sizeof h);
    memcpy(dst + TENSOR_HEADER_BYTES, t->data, bytes);
    return DA_OK;
}

int da_checkpoint_get_tensor(const da_checkpoint *ck, const char *name, da_tensor *t)
{
    size_t size;
    const unsigned char *src = da_checkpoint_get(ck, name, &size);
    if (!src)
        return da_last_error_code();
    if (!t)
        return da_set_error(DA_EINVAL, "da_checkpoint_get_tensor: tensor is NULL");
    size_t bytes = (size_t)t->size * da_dtype_size(t->dtype);
    uint32_t h[6];
    if (size != TENSOR_HEADER_BYTES + bytes)
        return da_set_error(DA_EFORMAT, "checkpoint tensor '%s' has %zu bytes, the target "
                                        "needs %zu", name, size, TENSOR_HEADER_BYTES + bytes);
    memcpy(h, src, sizeof h);
    int same = h[0] == (uint32_t)t->dtype && h[1] == (uint32_t)t->ndim;
    for (int i = 0; i < DA_MAX_DIMS; i++)
        same = same && h[2 + i] == (uint32_t)t->shape[i];
    if (!same)
        return da_set_error(DA_EFORMAT, "checkpoint tensor '%s' has another dtype or shape "
                                        "than the target", name);
    memcpy(t->data, src + TENSOR_HEADER_BYTES, bytes);
    return DA_OK;
}

int da_checkpoint_put_long(da_checkpoint *ck, const char *name, long value)
{
    int64_t v = value;
    return da_checkpoint_put(ck, name, &v, sizeof v);
}

int da_checkpoint_get_long(const da_checkpoint *ck, const char *name, long *value)
{
    size_t size;
    const void *src = da_checkpoint_get(ck, name, &size);
    if (!src)
        return da_last_error_code();
    if (!value)
        return da_set_error(DA_EINVAL, "da_checkpoint_get_long: value is NULL");
    if (size != sizeof(int64_t))
        return da_set_error(DA_EFORMAT, "checkpoint blob '%s' is not an integer", name);
    int64_t v;
    memcpy(&v, src, sizeof v);
    *value = (long)v;
    return DA_OK;
}

int da_checkpoint_put_rng(da_checkpoint *ck, const char *name, const da_rng *rng)
{
    if (!rng)
        return da_set_error(DA_EINVAL, "da_checkpoint_put_rng: rng is NULL");
    void *dst = da_checkpoint_put_alloc(ck, name, da_rng_state_size(rng));
    if (!dst)
        return da_last_error_code();
    da_rng_state_save(rng, dst);
    return DA_OK;
}

int da_checkpoint_get_rng(const da_checkpoint *ck, const char *name, da_rng *rng)
{
    size_t size;
    const void *src = da_checkpoint_get(ck, name, &size);
    if (!src)
        return da_last_error_code();
    if (!rng)
        return da_set_error(DA_EINVAL, "da_checkpoint_get_rng: rng is NULL");
    if (size != da_rng_state_size(rng))
        return da_set_error(DA_EFORMAT, "checkpoint rng '%s' has %zu bytes, need %zu", name,
                            size, da_rng_state_size(rng));
    return da_rng_state_load(rng, src);
}

/* ---- serialization ---- */

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int check_envelope(const char *path, const unsigned char *buf, size_t size);

/* 1 if the file at path is a complete checkpoint (header, length and CRC), 0 if it is
 * missing, unreadable or damaged (a message is then recorded, and the caller goes on), -1
 * (DA_ENOMEM recorded) if it could not be read into memory. */
static int intact_checkpoint(const char *path)
{
    void *buf;
    size_t size;
    int rc = da_file_read(path, &buf, &size);
    if (rc)
        return rc == DA_ENOMEM ? -1 : 0;
    int ok = check_envelope(path, buf, size) == DA_OK;
    da_free(buf);
    return ok;
}

/* step (2) of "Previous checkpoint" (io.h): rename PATH to PATH.prev if PATH is intact
 * (a damaged one would replace the good previous checkpoint) */
static int keep_previous(const char *path, const char *prev)
{
    int intact = intact_checkpoint(path);
    if (intact <= 0)
        return intact < 0 ? DA_ENOMEM : DA_OK;
    if (rename(path, prev))
        return da_set_error(DA_EIO, "%s: cannot keep the previous checkpoint as %s: %s", path,
                            prev, strerror(errno));
    sync_parent_dir(prev);
    return DA_OK;
}

int da_checkpoint_save(const da_checkpoint *ck, const char *path)
{
    if (!ck || !path || !path[0])
        return da_set_error(DA_EINVAL, "da_checkpoint_save: NULL checkpoint or path");
    size_t payload = 0;
    for (int i = 0; i < ck->n; i++)
        payload += 4 + strlen(ck->blobs[i].name) + 8 + ck->blobs[i].size;
    size_t total = HEADER_BYTES + payload + CRC_BYTES;
    unsigned char *buf = da_malloc(total);
    if (!buf)
        return da_set_error(DA_ENOMEM, "da_checkpoint_save: out of memory for %zu bytes", total);
    unsigned char *p = buf + HEADER_BYTES;
    memcpy(buf, MAGIC, 8);
    put_le(buf + 8, DA_CHECKPOINT_VERSION, 4);
    put_le(buf + 12, (uint64_t)ck->n, 4);
    put_le(buf + 16, payload, 8);
    for (int i = 0; i < ck->n; i++) {
        const blob *b = &ck->blobs[i];
        size_t len = strlen(b->name);
        put_le(p, len, 4);
        memcpy(p + 4, b->name, len);
        put_le(p + 4 + len, b->size, 8);
        memcpy(p + 12 + len, b->data, b->size);
        p += 12 + len + b->size;
    }
    uLong crc = crc32_z(crc32_z(0L, Z_NULL, 0), buf, HEADER_BYTES + payload);
    put_le(p, crc, 4);
    char *tmp = NULL, *prev = path_with(path, DA_CHECKPOINT_PREV_SUFFIX);
    int rc = prev ? write_temp(path, buf, total, &tmp) : DA_ENOMEM;
    da_free(buf);
    if (!rc)
        rc = keep_previous(path, prev);
    if (!rc) {
        rc = install_temp(path, tmp);
    } else if (tmp) {
        unlink(tmp);
        da_free(tmp);
    }
    da_free(prev);
    return rc;
}

/* parse the validated payload [p, end) of n blobs into ck */
static int parse_blobs(da_checkpoint *ck, const char *path, const unsigned char *p,
                       const unsigned char *end, uint64_t n)
{
    char name[DA_CHECKPOINT_MAX_NAME + 1];
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 4)
            return da_set_error(DA_EFORMAT, "%s: blob %lu header past the payload", path,
                                (unsigned long)i);
        uint64_t len = get_le(p, 4);
        if (len < 1 || len > DA_CHECKPOINT_MAX_NAME || (uint64_t)(end - p) < 4 + len + 8)
            return da_set_error(DA_EFORMAT, "%s: blob %lu has a bad name length %lu", path,
                                (unsigned long)i, (unsigned long)len);
        memcpy(name, p + 4, len);
        name[len] = '\0';
        uint64_t size = get_le(p + 4 + len, 8);
        p += 12 + len;
        if (strlen(name) != len || size > (uint64_t)(end - p))
            return da_set_error(DA_EFORMAT, "%s: blob %lu is malformed", path,
                                (unsigned long)i);
        if (find(ck, name))
            return da_set_error(DA_EFORMAT, "%s: blob name '%s' repeats", path, name);
        if (da_checkpoint_put(ck, name, p, size))
            return da_last_error_code();
        p += size;
    }
    if (p != end)
        return da_set_error(DA_EFORMAT, "%s: %ld bytes after the last blob", path,
                            (long)(end - p));
    return DA_OK;
}

/* the header, the length and the CRC of a checkpoint file's bytes */
static int check_envelope(const char *path, const unsigned char *buf, size_t size)
{
    if (size < HEADER_BYTES + CRC_BYTES)
        return da_set_error(DA_EFORMAT, "%s: truncated checkpoint (%zu bytes)", path, size);
    if (memcmp(buf, MAGIC, 8))
        return da_set_error(DA_EFORMAT, "%s: not a diffalg checkpoint (bad magic)", path);
    uint64_t version = get_le(buf + 8, 4), payload = get_le(buf + 16, 8);
    if (version != DA_CHECKPOINT_VERSION)
        return da_set_error(DA_EFORMAT, "%s: checkpoint version %lu (this build reads %d)",
                            path, (unsigned long)version, DA_CHECKPOINT_VERSION);
    if (payload != size - HEADER_BYTES - CRC_BYTES)
        return da_set_error(DA_EFORMAT, "%s: checkpoint of %zu bytes announces a payload of "
                                        "%lu bytes (truncated or extended file)",
                            path, size, (unsigned long)payload);
    uLong crc = crc32_z(crc32_z(0L, Z_NULL, 0), buf, HEADER_BYTES + payload);
    if ((uint64_t)crc != get_le(buf + HEADER_BYTES + payload, 4))
        return da_set_error(DA_EFORMAT, "%s: checkpoint CRC mismatch (corrupted file)", path);
    return DA_OK;
}

static int parse_checkpoint(da_checkpoint *ck, const char *path, const unsigned char *buf,
                            size_t size)
{
    int rc = check_envelope(path, buf, size);
    if (rc)
        return rc;
    uint64_t n = get_le(buf + 12, 4), payload = get_le(buf + 16, 8);
    return parse_blobs(ck, path, buf + HEADER_BYTES, buf + HEADER_BYTES + payload, n);
}

int da_checkpoint_load(const char *path, da_checkpoint **out)
{
    if (!path || !out)
        return da_set_error(DA_EINVAL, "da_checkpoint_load: NULL path or out");
    *out = NULL;
    void *buf;
    size_t size;
    int rc = da_file_read(path, &buf, &size);
    if (rc)
        return rc;
    da_checkpoint *ck = da_checkpoint_new();
    rc = ck ? parse_checkpoint(ck, path, buf, size) : DA_ENOMEM;
    da_free(buf);
    if (rc) {
        da_checkpoint_free(ck);
        return rc;
    }
    *out = ck;
    return DA_OK;
}

/* the text of a recorded message after its "DA_E...: " prefix */
static const char *without_code(const char *msg)
{
    const char *s = strstr(msg, ": ");
    return s ? s + 2 : msg;
}

int da_checkpoint_load_latest(const char *path, da_checkpoint **out, char *rejected,
                              size_t rejected_size)
{
    if (!path || !out)
        return da_set_error(DA_EINVAL, "da_checkpoint_load_latest: NULL path or out");
    if (rejected && rejected_size)
        rejected[0] = '\0';
    int rc = da_checkpoint_load(path, out);
    struct stat st;
    int missing = rc == DA_EIO && stat(path, &st) && errno == ENOENT;
    if (rc != DA_EFORMAT && !missing)
        return rc;
    char why[512];
    snprintf(why, sizeof why, "%s", da_last_error());
    char *prev = path_with(path, DA_CHECKPOINT_PREV_SUFFIX);
    if (!prev)
        return DA_ENOMEM;
    int prc = da_checkpoint_load(prev, out);
    if (!prc && rejected && rejected_size)
        snprintf(rejected, rejected_size, "%s", why);
    if (prc) {
        char prev_why[512]; /* da_last_error() is the buffer da_set_error writes */
        snprintf(prev_why, sizeof prev_why, "%s", without_code(da_last_error()));
        rc = da_set_error(prc == DA_ENOMEM ? DA_ENOMEM : rc, "%s; previous checkpoint: %s",
                          without_code(why), prev_why);
    }
    da_free(prev);
    return prc ? rc : DA_OK;
}
