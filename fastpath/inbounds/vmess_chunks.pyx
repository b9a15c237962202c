# distutils: libraries = crypto
"""The VMess body codec: the per-chunk AEAD of one direction of a VMess stream, in C.

Why by hand: this is the hot path of the VMess inbound (every relayed byte goes through it) and
no library offers VMess's framing.  ``cryptography``'s AEAD objects would cost a Python call,
a fresh nonce ``bytes`` and a fresh result ``bytes`` per 16 KiB chunk, plus slicing of the
stream buffer; here the chunks of one read are opened or sealed in one C loop with OpenSSL's
EVP contexts kept per direction, writing into one output buffer.  The header (once per
connection) stays in Python with ``cryptography`` (``vmess_header.py``).

Wire facts (the VMess AEAD body as xray and sing-box speak it):

* a chunk is ``[length][payload sealed][padding]``; the nonce is a 16-bit big-endian counter
  followed by bytes 2..12 of the body IV; AES-128-GCM with the 16-byte body key, or
  ChaCha20-Poly1305 with ``md5(key) + md5(md5(key))`` (made by the caller); ``none``: payload
  as is (only with the chunk-stream option; without it the body is the raw stream and no codec
  is used at all);
* the length is the bytes after it (sealed payload + padding), big-endian; with *chunk
  masking* it is XORed with the next two bytes of SHAKE128(body IV); with *global padding* two
  bytes of that same stream, taken before the mask, give ``padding = value % 64``; with
  *authenticated length* it is instead ``sealed payload - 16 + padding`` sealed on its own
  (18 bytes) with a separate key and the request IV, with its own counter;
* a chunk of empty payload ends the stream.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memmove

cdef extern from "openssl/evp.h":
    ctypedef struct EVP_CIPHER_CTX:
        pass
    ctypedef struct EVP_CIPHER:
        pass
    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    EVP_CIPHER_CTX *EVP_CIPHER_CTX_new()
    void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX *ctx)
    const EVP_CIPHER *EVP_aes_128_gcm()
    const EVP_CIPHER *EVP_chacha20_poly1305()
    int EVP_CipherInit_ex(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, void *impl,
                          const unsigned char *key, const unsigned char *iv, int enc)
    int EVP_CipherUpdate(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                         const unsigned char *inp, int inl)
    int EVP_CipherFinal_ex(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl)
    int EVP_CIPHER_CTX_ctrl(EVP_CIPHER_CTX *ctx, int type, int arg, void *ptr)
    enum: EVP_CTRL_AEAD_GET_TAG
    enum: EVP_CTRL_AEAD_SET_TAG
    EVP_MD_CTX *EVP_MD_CTX_new()
    void EVP_MD_CTX_free(EVP_MD_CTX *ctx)
    int EVP_MD_CTX_copy_ex(EVP_MD_CTX *out, const EVP_MD_CTX *inp)
    const EVP_MD *EVP_shake128()
    int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, void *impl)
    int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt)
    int EVP_DigestFinalXOF(EVP_MD_CTX *ctx, unsigned char *md, size_t len)

cdef extern from "openssl/rand.h":
    int RAND_bytes(unsigned char *buf, int num)

# Security byte of the VMess header.
SECURITY_AES_128_GCM = 3
SECURITY_CHACHA20_POLY1305 = 4
SECURITY_NONE = 5
# Option bits of the VMess header.
OPTION_CHUNK_STREAM = 0x01
OPTION_CHUNK_MASKING = 0x04
OPTION_GLOBAL_PADDING = 0x08
OPTION_AUTHENTICATED_LENGTH = 0x10

DEF TAG = 16
DEF MAX_PLAIN = 16384          # payload per sealed chunk, as the reference writers use
DEF MASK_START = 4096
DEF MAX_PACKET = 65535 - TAG - 63   # the largest chunk a 16-bit length with padding can carry


class ChunkError(ValueError):
    """A chunk did not authenticate or is malformed: this stream cannot go on."""


cdef class _Shake:
    """SHAKE128(seed) read two bytes at a time.  OpenSSL 3.0 offers no incremental squeeze, so
    the output is made in blocks that double (a longer output keeps the shorter as its
    prefix): the work stays within twice what is read."""
    cdef EVP_MD_CTX *seeded
    cdef unsigned char *out
    cdef size_t size
    cdef size_t pos

    def __cinit__(self, bytes seed):
        self.seeded = EVP_MD_CTX_new()
        if (self.seeded == NULL or EVP_DigestInit_ex(self.seeded, EVP_shake128(), NULL) != 1
                or EVP_DigestUpdate(self.seeded, PyBytes_AS_STRING(seed), PyBytes_GET_SIZE(seed)) != 1):
            raise MemoryError("SHAKE128 context")
        self.out = NULL
        self.size = 0
        self.pos = 0
        self._grow()

    def __dealloc__(self):
        if self.seeded != NULL:
            EVP_MD_CTX_free(self.seeded)
        if self.out != NULL:
            free(self.out)

    cdef int _grow(self) except -1:
        cdef size_t size = MASK_START if self.size == 0 else self.size * 2
        cdef EVP_MD_CTX *ctx = EVP_MD_CTX_new()
        cdef unsigned char *out = <unsigned char *>malloc(size)
        if ctx == NULL or out == NULL:
            if ctx != NULL:
                EVP_MD_CTX_free(ctx)
            free(out)
            raise MemoryError("SHAKE128 output")
        if EVP_MD_CTX_copy_ex(ctx, self.seeded) != 1 or EVP_DigestFinalXOF(ctx, out, size) != 1:
            EVP_MD_CTX_free(ctx)
            free(out)
            raise MemoryError("SHAKE128 squeeze")
        EVP_MD_CTX_free(ctx)
        free(self.out)
        self.out = out
        self.size = size
        return 0

    cdef inline int next16(self) except -1:
        if self.pos + 2 > self.size:
            self._grow()
        cdef int v = (self.out[self.pos] << 8) | self.out[self.pos + 1]
        self.pos += 2
        return v


cdef class _Aead:
    """One EVP AEAD context and its 12-byte nonce (counter + IV[2:12])."""
    cdef EVP_CIPHER_CTX *ctx
    cdef unsigned char nonce[12]
    cdef unsigned int count
    cdef bint enc

    def __cinit__(self, int security, bytes key, bytes iv, bint enc):
        cdef const EVP_CIPHER *cipher
        if security == SECURITY_AES_128_GCM:
            cipher = EVP_aes_128_gcm()
            if len(key) != 16:
                raise ValueError("aes-128-gcm needs a 16-byte key")
        elif security == SECURITY_CHACHA20_POLY1305:
            cipher = EVP_chacha20_poly1305()
            if len(key) != 32:
                raise ValueError("chacha20-poly1305 needs a 32-byte key")
        else:
            raise ValueError(f"security {security} has no AEAD")
        if len(iv) < 12:
            raise ValueError("the body IV has 16 bytes")
        memcpy(self.nonce, PyBytes_AS_STRING(iv), 12)
        self.count = 0
        self.enc = enc
        self.ctx = EVP_CIPHER_CTX_new()
        if self.ctx == NULL or EVP_CipherInit_ex(self.ctx, cipher, NULL,
                                                 <unsigned char *>PyBytes_AS_STRING(key), NULL,
                                                 1 if enc else 0) != 1:
            raise MemoryError("AEAD context")

    def __dealloc__(self):
        if self.ctx != NULL:
            EVP_CIPHER_CTX_free(self.ctx)

    cdef inline int _nonce(self):
        self.nonce[0] = (self.count >> 8) & 0xFF
        self.nonce[1] = self.count & 0xFF
        self.count = (self.count + 1) & 0xFFFF
        return EVP_CipherInit_ex(self.ctx, NULL, NULL, NULL, self.nonce, -1)

    cdef int seal(self, const unsigned char *src, int n, unsigned char *dst) noexcept:
        """``n`` bytes of ``src`` sealed into ``dst`` (n + 16 bytes); 0 on success."""
        cdef int outl = 0, fin = 0
        if (self._nonce() != 1 or EVP_CipherUpdate(self.ctx, dst, &outl, src, n) != 1
                or EVP_CipherFinal_ex(self.ctx, dst + outl, &fin) != 1
                or EVP_CIPHER_CTX_ctrl(self.ctx, EVP_CTRL_AEAD_GET_TAG, TAG, dst + n) != 1):
            return -1
        return 0

    cdef int open(self, const unsigned char *src, int n, unsigned char *dst) noexcept:
        """``n`` sealed bytes (tag last) opened into ``dst`` (n - 16 bytes); 0 when they
        authenticate."""
        cdef int outl = 0, fin = 0
        if n < TAG:
            return -1
        if (self._nonce() != 1
                or EVP_CIPHER_CTX_ctrl(self.ctx, EVP_CTRL_AEAD_SET_TAG, TAG,
                                       <void *>(src + n - TAG)) != 1
                or EVP_CipherUpdate(self.ctx, dst, &outl, src, n - TAG) != 1
                or EVP_CipherFinal_ex(self.ctx, dst + outl, &fin) != 1):
            return -1
        return 0


cdef class _Buffer:
    cdef unsigned char *data
    cdef size_t len
    cdef size_t cap

    def __dealloc__(self):
        free(self.data)

    cdef int reserve(self, size_t extra) except -1:
        cdef size_t want = self.len + extra
        cdef unsigned char *grown
        if want <= self.cap:
            return 0
        want = max(want, self.cap * 2, 4096)
        grown = <unsigned char *>realloc(self.data, want)
        if grown == NULL:
            raise MemoryError()
        self.data = grown
        self.cap = want
        return 0

    cdef int append(self, const unsigned char *src, size_t n) except -1:
        self.reserve(n)
        memcpy(self.data + self.len, src, n)
        self.len += n
        return 0

    cdef void consume(self, size_t n) noexcept:
        if n >= self.len:
            self.len = 0
        else:
            memmove(self.data, self.data + n, self.len - n)
            self.len -= n


cdef class VmessChunks:
    """One direction of a VMess body: ``feed(raw) -> plaintext`` for what the client sends,
    ``seal(plaintext) -> raw`` for what goes back (``prefix``, the response header, first)."""
    cdef _Aead aead
    cdef _Aead length_aead
    cdef _Shake shake
    cdef bint masking
    cdef bint padding
    cdef int security
    cdef _Buffer inbuf
    cdef _Buffer outbuf
    cdef int need             # bytes of the chunk being read after its length (0: a length)
    cdef int pad              # padding of that chunk
    cdef readonly bint ended
    cdef bytes prefix

    def __init__(self, int security, int option, bytes key, bytes iv, *, bint seal,
                 bytes length_key=None, bytes length_iv=None, bytes prefix=b""):
        self.security = security
        if security != SECURITY_NONE:
            self.aead = _Aead(security, key, iv, seal)
        elif not option & OPTION_CHUNK_STREAM:
            raise ValueError("security none without chunk stream is the raw stream: no codec")
        if option & OPTION_AUTHENTICATED_LENGTH and security != SECURITY_NONE:
            self.length_aead = _Aead(security, length_key, length_iv, seal)
        self.padding = bool(option & OPTION_GLOBAL_PADDING) and security != SECURITY_NONE
        self.masking = bool(option & OPTION_CHUNK_MASKING) and self.length_aead is None
        if self.padding or self.masking:
            self.shake = _Shake(iv)
        self.inbuf = _Buffer()
        self.outbuf = _Buffer()
        self.prefix = prefix

    cdef int _length_size(self) noexcept:
        return 2 + TAG if self.length_aead is not None else 2

    cdef int _read_length(self, const unsigned char *p) except -1:
        """Set ``need`` and ``pad`` from the length field at ``p``."""
        cdef unsigned char plain[2]
        cdef int length, pad = 0, tag = TAG if self.aead is not None else 0
        if self.padding:
            pad = self.shake.next16() % 64
        if self.length_aead is not None:
            if self.length_aead.open(p, 2 + TAG, plain) != 0:
                raise ChunkError("a chunk length did not authenticate")
            length = ((plain[0] << 8) | plain[1]) + TAG
        else:
            length = (p[0] << 8) | p[1]
            if self.masking:
                length ^= self.shake.next16()
        if length - pad < tag:
            raise ChunkError(f"chunk length {length} with padding {pad}")
        self.need = length - pad
        self.pad = pad
        return 0

    def feed(self, bytes data):
        """The plaintext of every whole chunk in what has come so far, joined."""
        return self._open(data, None)

    def feed_packets(self, bytes data):
        """The plaintext of every whole chunk so far, one ``bytes`` each: VMess UDP carries
        one datagram per chunk, so the chunk boundaries are the datagrams'."""
        packets = []
        self._open(data, packets)
        return packets

    cdef object _open(self, bytes data, list packets):
        cdef _Buffer buf = self.inbuf
        cdef _Buffer out = self.outbuf
        cdef size_t pos = 0
        cdef int lsize = self._length_size()
        cdef int payload
        if self.ended:
            return b""
        buf.append(<unsigned char *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        out.len = 0
        out.reserve(buf.len)
        while True:
            if self.need == 0:
                if buf.len - pos < <size_t>lsize:
                    break
                self._read_length(buf.data + pos)
                pos += lsize
            if buf.len - pos < <size_t>(self.need + self.pad):
                break
            if self.aead is not None:
                payload = self.need - TAG
                if self.aead.open(buf.data + pos, self.need, out.data + out.len) != 0:
                    raise ChunkError("a chunk did not authenticate")
            else:
                payload = self.need
                memcpy(out.data + out.len, buf.data + pos, payload)
            if packets is not None and payload:
                packets.append(PyBytes_FromStringAndSize(<char *>out.data + out.len, payload))
            out.len += payload
            pos += self.need + self.pad
            self.need = 0
            if payload == 0:
                self.ended = True
                break
        buf.consume(pos)
        if self.ended:
            buf.len = 0
        if packets is not None:
            return None
        return PyBytes_FromStringAndSize(<char *>out.data, out.len)

    def seal(self, bytes data):
        """``data`` as chunks of at most 16 KiB each (``prefix`` first, once)."""
        return self._seal(data, MAX_PLAIN)

    def seal_packet(self, bytes data):
        """One datagram as one chunk (VMess UDP); ValueError if it cannot fit one.  An empty
        datagram makes no chunk (an empty chunk would end the stream)."""
        if PyBytes_GET_SIZE(data) > MAX_PACKET:
            raise ValueError(f"a {PyBytes_GET_SIZE(data)}-byte datagram does not fit a VMess chunk")
        return self._seal(data, MAX_PACKET)

    cdef bytes _seal(self, bytes data, int max_piece):
        cdef _Buffer out = self.outbuf
        cdef const unsigned char *src = <unsigned char *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), done = 0
        cdef int piece, pad, length, tag = TAG if self.aead is not None else 0
        cdef int lsize = self._length_size()
        cdef unsigned char field[2]
        out.len = 0
        if self.prefix:
            out.append(<unsigned char *>PyBytes_AS_STRING(self.prefix), PyBytes_GET_SIZE(self.prefix))
            self.prefix = b""
        out.reserve((n // max_piece + 1) * (lsize + tag + 64) + n)
        while done < n:
            piece = max_piece if n - done > max_piece else <int>(n - done)
            pad = self.shake.next16() % 64 if self.padding else 0
            length = piece + tag + pad
            if self.length_aead is not None:
                field[0] = ((length - TAG) >> 8) & 0xFF
                field[1] = (length - TAG) & 0xFF
                if self.length_aead.seal(field, 2, out.data + out.len) != 0:
                    raise ChunkError("sealing a chunk length failed")
            else:
                if self.masking:
                    length ^= self.shake.next16()
                out.data[out.len] = (length >> 8) & 0xFF
                out.data[out.len + 1] = length & 0xFF
            out.len += lsize
            if self.aead is not None:
                if self.aead.seal(src + done, piece, out.data + out.len) != 0:
                    raise ChunkError("sealing a chunk failed")
            else:
                memcpy(out.data + out.len, src + done, piece)
            out.len += piece + tag
            if pad:
                RAND_bytes(out.data + out.len, pad)
                out.len += pad
            done += piece
        return PyBytes_FromStringAndSize(<char *>out.data, out.len)
