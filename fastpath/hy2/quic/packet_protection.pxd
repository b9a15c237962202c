# QUIC packet protection (RFC 9001 sections 5.3 and 5.4) and QUIC varints, C level, for the
# compiled builder (sealing), receive path (opening), ACK reader and frame writers.
#
# Why one file: sending and receiving set up the same OpenSSL contexts for a packet key (the
# AEAD and header-protection ciphers chosen by name, the IV, the header-protection mask) and
# differ only in Encrypt/Decrypt for the AEAD; the frame code of four modules reads and writes
# the same varints.  Everything is ``cdef inline`` here so each module compiles it into its own
# per-packet loops (no call through a module's C-API capsule, no Python object in the loop).
from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

from fastpath.hy2.wire.varint cimport varint_decode, varint_encode


cdef extern from "openssl/evp.h":
    ctypedef struct EVP_CIPHER_CTX:
        pass
    ctypedef struct EVP_CIPHER:
        pass
    EVP_CIPHER_CTX *EVP_CIPHER_CTX_new()
    void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX *ctx) nogil
    const EVP_CIPHER *EVP_get_cipherbyname(const char *name)
    int EVP_EncryptInit_ex(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, void *impl,
                           const unsigned char *key, const unsigned char *iv) nogil
    int EVP_EncryptUpdate(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                          const unsigned char *inp, int inl) nogil
    int EVP_EncryptFinal_ex(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl) nogil
    int EVP_DecryptInit_ex(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, void *impl,
                           const unsigned char *key, const unsigned char *iv) nogil
    int EVP_DecryptUpdate(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                          const unsigned char *inp, int inl) nogil
    int EVP_DecryptFinal_ex(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl) nogil
    int EVP_CIPHER_CTX_ctrl(EVP_CIPHER_CTX *ctx, int type, int arg, void *ptr) nogil
    int EVP_CIPHER_CTX_set_padding(EVP_CIPHER_CTX *ctx, int pad)
    enum: EVP_CTRL_AEAD_GET_TAG
    enum: EVP_CTRL_AEAD_SET_TAG


cdef enum:
    TAG_SIZE = 16
    SAMPLE_SIZE = 16
    IV_SIZE = 12


# The OpenSSL side of one packet key: the AEAD context (keyed, nonce set per packet), the
# header-protection context and the IV the nonce is made from.  A zeroed struct holds nothing
# (extension-type fields start zeroed), so packet_key_free is safe on one never initialised.
cdef struct PacketKey:
    EVP_CIPHER_CTX *aead_ctx
    EVP_CIPHER_CTX *hp_ctx
    uint8_t iv[IV_SIZE]
    bint hp_chacha


cdef inline const EVP_CIPHER *_cipher(bytes name) except NULL:
    """OpenSSL's cipher for one of aioquic's names (``CIPHER_SUITES``: the AEAD or the header
    protection of a suite; they are OpenSSL's own names, which aioquic's C binding looks up
    the same way)."""
    cdef const EVP_CIPHER *cipher = EVP_get_cipherbyname(name)
    if cipher == NULL:
        raise ValueError(f"unknown QUIC cipher {name!r}")
    return cipher


cdef inline bytes packet_key_init(PacketKey *k, object context, object kept_hp_key,
                                  bint decrypt):
    """Keys ``k`` for aioquic's ``CryptoContext`` ``context`` (its suite and secret, through
    aioquic's own derivation): the AEAD to decrypt when ``decrypt``, else to encrypt (header
    protection always encrypts: it makes a mask).  A key update replaces the packet
    protection keys only (RFC 9001 section 6): then ``kept_hp_key`` is the header protection
    key to keep.  Returns the header protection key used.  Runs once per key."""
    from aioquic.quic.crypto import CIPHER_SUITES, derive_key_iv_hp
    hp_name, aead_name = CIPHER_SUITES[context.cipher_suite]
    key, iv, hp_key = derive_key_iv_hp(cipher_suite=context.cipher_suite,
                                       secret=context.secret, version=context.version)
    if kept_hp_key is not None:
        hp_key = kept_hp_key
    cdef const EVP_CIPHER *aead_cipher = _cipher(aead_name)
    cdef const EVP_CIPHER *hp_cipher = _cipher(hp_name)
    cdef uint8_t zero_iv[16]
    cdef int ok
    if len(iv) != IV_SIZE:
        raise ValueError("AEAD IV must be 12 bytes")
    memcpy(k.iv, PyBytes_AS_STRING(iv), IV_SIZE)
    k.aead_ctx = EVP_CIPHER_CTX_new()
    k.hp_ctx = EVP_CIPHER_CTX_new()
    if k.aead_ctx == NULL or k.hp_ctx == NULL:
        raise MemoryError()
    if decrypt:
        ok = EVP_DecryptInit_ex(k.aead_ctx, aead_cipher, NULL,
                                <const unsigned char *>PyBytes_AS_STRING(key), NULL)
    else:
        ok = EVP_EncryptInit_ex(k.aead_ctx, aead_cipher, NULL,
                                <const unsigned char *>PyBytes_AS_STRING(key), NULL)
    if ok != 1:
        raise ValueError("AEAD key setup failed")
    k.hp_chacha = hp_name == b"chacha20"
    memset(zero_iv, 0, 16)
    if EVP_EncryptInit_ex(k.hp_ctx, hp_cipher, NULL,
                          <const unsigned char *>PyBytes_AS_STRING(hp_key),
                          zero_iv if k.hp_chacha else NULL) != 1:
        raise ValueError("header protection key setup failed")
    EVP_CIPHER_CTX_set_padding(k.hp_ctx, 0)
    return hp_key


cdef inline void packet_key_free(PacketKey *k) noexcept nogil:
    if k.aead_ctx != NULL:
        EVP_CIPHER_CTX_free(k.aead_ctx)
        k.aead_ctx = NULL
    if k.hp_ctx != NULL:
        EVP_CIPHER_CTX_free(k.hp_ctx)
        k.hp_ctx = NULL


cdef inline int packet_key_mask(const PacketKey *k, const uint8_t *sample,
                                uint8_t *out) noexcept nogil:
    """The header protection mask for ``sample`` (16 bytes out, 5 used); 0, or -1 when OpenSSL
    failed."""
    cdef int outl = 0
    cdef uint8_t zeros[5]
    if k.hp_chacha:
        memset(zeros, 0, 5)
        if (EVP_EncryptInit_ex(k.hp_ctx, NULL, NULL, NULL, sample) != 1
                or EVP_EncryptUpdate(k.hp_ctx, out, &outl, zeros, 5) != 1):
            return -1
        return 0
    if EVP_EncryptUpdate(k.hp_ctx, out, &outl, sample, SAMPLE_SIZE) != 1:
        return -1
    return 0


cdef inline void packet_key_nonce(const PacketKey *k, uint64_t packet_number,
                                  uint8_t *nonce) noexcept nogil:
    """The AEAD nonce of a packet: the IV with the packet number XORed into its tail."""
    cdef int i
    memcpy(nonce, k.iv, IV_SIZE)
    for i in range(8):
        nonce[IV_SIZE - 1 - i] ^= <uint8_t>(packet_number >> (8 * i))


# -- frame types -------------------------------------------------------------------------------

cdef inline uint64_t frame_type_bits(object frame_types):
    """A bit per frame type below 64 of aioquic's set ``frame_types`` (the ACK-eliciting and
    in-flight classes), so the per-frame test is a shift; larger types stay in the set."""
    cdef uint64_t bits = 0
    for t in frame_types:
        if int(t) < 64:
            bits |= (<uint64_t>1) << int(t)
    return bits


# -- QUIC varints (RFC 9000 section 16) over a moving pointer ----------------------------------

cdef inline int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) noexcept nogil:
    """Reads the varint at ``p[0]`` (before ``end``) into ``out`` and moves ``p[0]`` past it;
    -1 (nothing moved) when it is truncated."""
    cdef int n
    if p[0] >= end:
        return -1
    n = varint_decode(p[0], end - p[0], out)
    if n == 0:
        return -1
    p[0] += n
    return 0


cdef inline uint8_t *put_varint(uint8_t *p, uint64_t value) noexcept nogil:
    """Writes ``value`` at ``p`` in its shortest form; the byte after it.  ``value`` is below
    2**62, as every QUIC value is (aioquic refuses larger ones before they reach the compiled
    path); its size is ``fastpath.hy2.wire.varint.varint_size``."""
    return p + varint_encode(value, p)
