/* BLAKE2b (RFC 7693), unkeyed, for Salamander's per-packet key.
 *
 * Written for this project so that deriving a packet's key is a C call inside the Cython
 * obfuscator instead of a hashlib object per packet.  Portable C, no SIMD: the inputs are one
 * 128-byte block (password || 8-byte salt) in practice.
 */
#ifndef FP_BLAKE2B_H
#define FP_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FP_BLAKE2B_BLOCK 128

typedef struct {
    uint64_t h[8];
    uint64_t t[2];
    uint8_t buf[FP_BLAKE2B_BLOCK];
    size_t buflen;
    size_t outlen;
} fp_blake2b_state;

static const uint64_t fp_blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t fp_blake2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t fp_blake2b_rotr(uint64_t x, int n) {
    return (x >> n) | (x << (64 - n));
}

static inline uint64_t fp_blake2b_load64(const uint8_t *p) {
    /* BLAKE2b reads its message words little-endian whatever the host. */
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
           ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
           ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

#define FP_B2B_G(a, b, c, d, x, y)               \
    do {                                         \
        v[a] = v[a] + v[b] + (x);                \
        v[d] = fp_blake2b_rotr(v[d] ^ v[a], 32); \
        v[c] = v[c] + v[d];                      \
        v[b] = fp_blake2b_rotr(v[b] ^ v[c], 24); \
        v[a] = v[a] + v[b] + (y);                \
        v[d] = fp_blake2b_rotr(v[d] ^ v[a], 16); \
        v[c] = v[c] + v[d];                      \
        v[b] = fp_blake2b_rotr(v[b] ^ v[c], 63); \
    } while (0)

/* Fully unrolled rounds turn every sigma lookup into a constant index, so the message words
 * stay in registers: about 25 % faster than the rolled loop on the dev machine. */
#if defined(__clang__)
#define FP_B2B_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define FP_B2B_UNROLL _Pragma("GCC unroll 12")
#else
#define FP_B2B_UNROLL
#endif

static void fp_blake2b_compress(fp_blake2b_state *s, const uint8_t *block, int last) {
    uint64_t m[16], v[16];
    int i, r;
    for (i = 0; i < 16; i++)
        m[i] = fp_blake2b_load64(block + 8 * i);
    for (i = 0; i < 8; i++) {
        v[i] = s->h[i];
        v[i + 8] = fp_blake2b_iv[i];
    }
    v[12] ^= s->t[0];
    v[13] ^= s->t[1];
    if (last)
        v[14] = ~v[14];
    FP_B2B_UNROLL
    for (r = 0; r < 12; r++) {
        const uint8_t *sg = fp_blake2b_sigma[r];
        FP_B2B_G(0, 4, 8, 12, m[sg[0]], m[sg[1]]);
        FP_B2B_G(1, 5, 9, 13, m[sg[2]], m[sg[3]]);
        FP_B2B_G(2, 6, 10, 14, m[sg[4]], m[sg[5]]);
        FP_B2B_G(3, 7, 11, 15, m[sg[6]], m[sg[7]]);
        FP_B2B_G(0, 5, 10, 15, m[sg[8]], m[sg[9]]);
        FP_B2B_G(1, 6, 11, 12, m[sg[10]], m[sg[11]]);
        FP_B2B_G(2, 7, 8, 13, m[sg[12]], m[sg[13]]);
        FP_B2B_G(3, 4, 9, 14, m[sg[14]], m[sg[15]]);
    }
    for (i = 0; i < 8; i++)
        s->h[i] ^= v[i] ^ v[i + 8];
}

#undef FP_B2B_G
#undef FP_B2B_UNROLL

/* Unkeyed state for a digest of outlen (1..64) bytes. */
static inline void fp_blake2b_init(fp_blake2b_state *s, size_t outlen) {
    int i;
    for (i = 0; i < 8; i++)
        s->h[i] = fp_blake2b_iv[i];
    s->h[0] ^= 0x01010000ULL ^ (uint64_t)outlen;
    s->t[0] = s->t[1] = 0;
    s->buflen = 0;
    s->outlen = outlen;
}

static inline void fp_blake2b_count(fp_blake2b_state *s, uint64_t n) {
    s->t[0] += n;
    if (s->t[0] < n)
        s->t[1]++;
}

/* The last block is compressed with the final flag, so a full buffer is only compressed once
 * more input shows it was not the last. */
static void fp_blake2b_update(fp_blake2b_state *s, const uint8_t *in, size_t n) {
    while (n > 0) {
        if (s->buflen == FP_BLAKE2B_BLOCK) {
            fp_blake2b_count(s, FP_BLAKE2B_BLOCK);
            fp_blake2b_compress(s, s->buf, 0);
            s->buflen = 0;
        }
        size_t take = FP_BLAKE2B_BLOCK - s->buflen;
        if (take > n)
            take = n;
        memcpy(s->buf + s->buflen, in, take);
        s->buflen += take;
        in += take;
        n -= take;
    }
}

static void fp_blake2b_final(fp_blake2b_state *s, uint8_t *out) {
    uint8_t full[64];
    size_t i;
    fp_blake2b_count(s, s->buflen);
    memset(s->buf + s->buflen, 0, FP_BLAKE2B_BLOCK - s->buflen);
    fp_blake2b_compress(s, s->buf, 1);
    for (i = 0; i < 8; i++) {
        uint64_t w = s->h[i];
        int j;
        for (j = 0; j < 8; j++)
            full[8 * i + j] = (uint8_t)(w >> (8 * j));
    }
    memcpy(out, full, s->outlen);
}

#endif /* FP_BLAKE2B_H */
