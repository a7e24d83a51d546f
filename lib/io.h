/* io.h - atomic file writes and checkpoints (DESIGN.md §8).
 *
 * Atomic write: the bytes go to a temporary file in the target's directory
 * (PATH.tmp.XXXXXX), which is fsync'd, closed and renamed over PATH; the directory is
 * then fsync'd. A reader sees the old file or the new one, never a partial one; on any
 * failure the temporary file is removed.
 *
 * A checkpoint is a list of named blobs (parameter tensors, optimizer state, RNG state,
 * step counter, ...) kept in memory and written in one atomic write. File format,
 * header fields little-endian:
 *   offset 0   8 bytes  magic "DACKPT\r\n"
 *          8   u32      version (1)
 *         12   u32      number of blobs
 *         16   u64      payload length P
 *         24   P bytes  payload: per blob u32 name length L (1..255), L bytes of name,
 *                       u64 blob size S, S bytes of data
 *     24 + P   u32      CRC-32 (zlib) of bytes [0, 24 + P): header and payload
 * Blob data are stored as given (tensor and RNG blobs in host byte order). Loading
 * checks the magic, the version, the length, the CRC and the structure of every blob:
 * DA_EFORMAT on any mismatch (truncation, trailing bytes, a corrupted byte), DA_EIO if
 * the file cannot be read.
 *
 * Previous checkpoint: da_checkpoint_save keeps the file it replaces as PATH.prev, so
 * that a checkpoint damaged after it was written (truncated, bit-flipped) does not lose
 * the run: da_checkpoint_load_latest rejects it with a message and loads PATH.prev. The
 * steps, crash-safe at every instant: (1) the new bytes go to PATH.tmp.XXXXXX, fsync'd;
 * (2) if PATH holds an intact checkpoint (header, length and CRC checked), it is renamed
 * to PATH.prev (a damaged PATH is not kept: it would replace a good PATH.prev); (3) the
 * temporary file is renamed to PATH; the directory is fsync'd after each rename. Between
 * (2) and (3) only PATH.prev exists, and da_checkpoint_load_latest loads it; a crash
 * before (3) leaves at most a stray PATH.tmp.XXXXXX. So at least one complete checkpoint
 * exists at every instant once the first save has returned.
 *
 * Ownership: da_checkpoint_new / da_checkpoint_load allocate, da_checkpoint_free frees
 * (NULL no-op). Blobs are copies owned by the checkpoint; pointers returned by
 * da_checkpoint_get / da_checkpoint_put_alloc stay valid until the blob is replaced or
 * the checkpoint freed. da_file_read returns a malloc'd buffer the caller frees. */
#ifndef DA_IO_H
#define DA_IO_H

#include <stddef.h>

#include "rng.h"
#include "tensor.h"

#define DA_CHECKPOINT_VERSION 1
#define DA_CHECKPOINT_MAX_NAME 255
#define DA_CHECKPOINT_PREV_SUFFIX ".prev"

/* Write size bytes to path atomically (see above). DA_EIO on failure. */
int da_file_write_atomic(const char *path, const void *data, size_t size);
/* Whole file into *data (malloc'd, *size bytes; one extra zero byte after the end). */
int da_file_read(const char *path, void **data, size_t *size);

typedef struct da_checkpoint da_checkpoint;

da_checkpoint *da_checkpoint_new(void);
void da_checkpoint_free(da_checkpoint *ck);

/* Add a copy of size bytes under name (replacing a blob of the same name). */
int da_checkpoint_put(da_checkpoint *ck, const char *name, const void *data, size_t size);
/* Add a zero-filled blob of size bytes and return it for the caller to fill (e.g. with
 * da_optim_state_save); NULL on error. */
void *da_checkpoint_put_alloc(da_checkpoint *ck, const char *name, size_t size);
/* The blob under name (its size in *size, may be NULL); NULL with DA_EFORMAT if absent. */
const void *da_checkpoint_get(const da_checkpoint *ck, const char *name, size_t *size);
int da_checkpoint_count(const da_checkpoint *ck);
const char *da_checkpoint_name(const da_checkpoint *ck, int i); /* NULL if out of range */

/* Typed blobs. A tensor blob holds dtype, ndim, shape and the data; get_tensor copies
 * it into an existing tensor of the same dtype and shape (DA_EFORMAT otherwise). */
int da_checkpoint_put_tensor(da_checkpoint *ck, const char *name, const da_tensor *t);
int da_checkpoint_get_tensor(const da_checkpoint *ck, const char *name, da_tensor *t);
int da_checkpoint_put_long(da_checkpoint *ck, const char *name, long value);
int da_checkpoint_get_long(const da_checkpoint *ck, const char *name, long *value);
int da_checkpoint_put_rng(da_checkpoint *ck, const char *name, const da_rng *rng);
int da_checkpoint_get_rng(const da_checkpoint *ck, const char *name, da_rng *rng);

/* Serialize and write atomically, keeping the checkpoint it replaces as PATH.prev (see
 * "Previous checkpoint" above). */
int da_checkpoint_save(const da_checkpoint *ck, const char *path);
/* Read and validate; *out receives a new checkpoint (NULL on error). */
int da_checkpoint_load(const char *path, da_checkpoint **out);
/* Load the newest good checkpoint: path, or PATH.prev if path is missing or damaged
 * (DA_EFORMAT: truncated, CRC mismatch, ...). rejected (may be NULL) receives, in at most
 * rejected_size bytes, the error message that rejected path when PATH.prev was loaded
 * instead, and an empty string otherwise. Other errors on path (DA_EIO for an unreadable
 * file, DA_ENOMEM) are returned as they are. If both fail: path's code (DA_ENOMEM if
 * that stopped the fallback) and a message naming both. */
int da_checkpoint_load_latest(const char *path, da_checkpoint **out, char *rejected,
                              size_t rejected_size);

#endif
