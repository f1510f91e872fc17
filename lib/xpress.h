/*
 * xpress.h - MS-XCA "LZ77+Huffman" (XPRESS Huffman) decompression and the
 * WinRM chunk framing around it (worker).
 *
 * Windows PowerShell compresses the data of WS-Man Send requests with it by
 * default (MS-WSMV 3.2.4.1.19 Remote Shell Compression).  The stream data is
 * a sequence of chunks, each
 *
 *     u16le original_size - 1, u16le compressed_size - 1, compressed_size bytes
 *
 * where a chunk whose two sizes are equal is stored raw, and any other chunk
 * is one XPRESS Huffman stream that decompresses to original_size bytes.
 * Replies are framed as stored chunks (we never compress).
 *
 * Everything here treats its input as hostile: every read is bounds-checked,
 * time is linear in input plus output, nothing recurses, and decompression
 * needs only ~3 KiB of stack and no heap.  Errors are negative errnos:
 * -EINVAL for malformed input, -EMSGSIZE past a struct buf's limit.
 */
#ifndef WINRMD_XPRESS_H
#define WINRMD_XPRESS_H

#include <stddef.h>

#include "util.h"

/* Largest original (and compressed) size of one WinRM chunk. */
#define XPRESS_WINRM_CHUNK 65536

/*
 * Decompress exactly one XPRESS Huffman stream (MS-XCA 2.2) whose
 * uncompressed size is out_len, into out[0..out_len).  Returns out_len, or
 * -EINVAL if the stream is malformed: a Huffman table whose code lengths are
 * not a complete prefix code, a read past the end of the input, a match
 * reaching before the start of the output, or more output than out_len.
 * Decoding stops as soon as out_len bytes exist (the EOF symbol and any
 * padding after them are not read).  out may be partly written on error.
 */
long xpress_huffman_decompress(const unsigned char *in, size_t in_len,
    unsigned char *out, size_t out_len);

/*
 * Decode a whole WinRM compressed stream (every chunk) and append the
 * plain data to out.  Returns 0, -EINVAL on any malformed chunk or trailing
 * garbage, or -EMSGSIZE past out->limit; on error out is left as it was.
 * An empty input is zero chunks, decoding to nothing.
 */
int xpress_winrm_decode(const unsigned char *in, size_t in_len, struct buf *out);

/*
 * Frame in as stored (uncompressed) chunks of at most XPRESS_WINRM_CHUNK
 * bytes and append them to out.  Returns 0 or -EMSGSIZE (out left as it
 * was); empty input appends nothing.
 */
int xpress_winrm_encode_stored(const unsigned char *in, size_t in_len, struct buf *out);

#endif
