# Socket addresses and batched datagram I/O (recvmmsg/sendmmsg) at C level, for the UDP pumps
# (Hysteria 2 server and client side, the proxy inbounds' UDP): the libc declarations, and "ip:port" text written without Python objects.
from libc.stdint cimport uint16_t, uint32_t
from libc.stdio cimport snprintf
from libc.string cimport memcpy, memset

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    cdef struct sockaddr:
        sa_family_t sa_family
    cdef struct sockaddr_storage:
        sa_family_t ss_family
    ssize_t sendto(int fd, const void *buf, size_t n, int flags, const sockaddr *addr,
                   socklen_t addr_len)
    ssize_t recvfrom(int fd, void *buf, size_t n, int flags, sockaddr *addr,
                     socklen_t *addr_len)
    int AF_INET
    int AF_INET6
    int MSG_DONTWAIT
    int MSG_TRUNC
    cdef struct iovec:
        void *iov_base
        size_t iov_len
    cdef struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    cdef struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    int recvmmsg(int fd, mmsghdr *msgs, unsigned int vlen, int flags, void *timeout)
    int sendmmsg(int fd, mmsghdr *msgs, unsigned int vlen, int flags)
    # Control messages: UDP_SEGMENT (GSO) on sends, UDP_GRO on receives.
    cdef struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr *CMSG_FIRSTHDR(msghdr *m)
    cmsghdr *CMSG_NXTHDR(msghdr *m, cmsghdr *c)
    unsigned char *CMSG_DATA(cmsghdr *c)
    size_t CMSG_SPACE(size_t n)
    size_t CMSG_LEN(size_t n)
    ssize_t sendmsg(int fd, const msghdr *m, int flags)
    int setsockopt(int fd, int level, int name, const void *val, socklen_t n)
    int getsockopt(int fd, int level, int name, void *val, socklen_t *n)

cdef enum:
    SOL_UDP_ = 17                 # linux/udp.h (IPPROTO_UDP)
    UDP_SEGMENT_ = 103
    UDP_GRO_ = 104
    GSO_MAX_SEGMENTS = 64         # the kernel's UDP_MAX_SEGMENTS on older kernels
    GSO_MAX_BYTES = 65000         # below the 65 507 bytes of one UDP payload

cdef inline void udp_segment_control(msghdr *m, void *space, uint16_t size) noexcept nogil:
    """Attach ``UDP_SEGMENT`` to ``m``: the kernel cuts its payload into datagrams of ``size``
    bytes (the last may be shorter).  ``space``: at least ``CMSG_SPACE(2)`` bytes (24), aligned
    for a ``cmsghdr``."""
    cdef cmsghdr *c
    m.msg_control = space
    m.msg_controllen = CMSG_SPACE(sizeof(uint16_t))
    c = CMSG_FIRSTHDR(m)
    c.cmsg_level = SOL_UDP_
    c.cmsg_type = UDP_SEGMENT_
    c.cmsg_len = CMSG_LEN(sizeof(uint16_t))
    memcpy(CMSG_DATA(c), &size, sizeof(uint16_t))


cdef extern from "<netinet/in.h>" nogil:
    cdef struct in_addr:
        pass
    cdef struct in6_addr:
        pass
    cdef struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    cdef struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)


cdef inline size_t ip_port_text(int family, const void *ip, uint16_t port, char *out,
                                size_t cap) noexcept nogil:
    """Write "a.b.c.d:port" or "[v6]:port" for a raw address (network order) to ``out``
    (``cap`` >= 56); return its length, 0 if the address does not print."""
    cdef char text[48]
    if inet_ntop(family, ip, text, sizeof(text)) == NULL:
        return 0
    if family == AF_INET6:
        return <size_t>snprintf(out, cap, "[%s]:%u", text, <unsigned int>port)
    return <size_t>snprintf(out, cap, "%s:%u", text, <unsigned int>port)


cdef inline size_t sockaddr_text(const sockaddr_storage *addr, char *out, size_t cap) noexcept nogil:
    """``ip_port_text`` of a socket address."""
    if addr.ss_family == AF_INET6:
        return ip_port_text(AF_INET6, &(<sockaddr_in6 *>addr).sin6_addr,
                            ntohs((<sockaddr_in6 *>addr).sin6_port), out, cap)
    return ip_port_text(AF_INET, &(<sockaddr_in *>addr).sin_addr,
                        ntohs((<sockaddr_in *>addr).sin_port), out, cap)


cdef inline socklen_t ip_sockaddr(const char *ip, uint16_t port, sockaddr_storage *out) noexcept nogil:
    """Fill ``out`` for an IPv4 or IPv6 literal (no brackets) and a port; its length, 0 when
    ``ip`` is not an IP literal.  The Hysteria 2 server's UDP pump and the inbounds' UDP
    target side both turn a checked address into a socket address this way."""
    cdef sockaddr_in *s4 = <sockaddr_in *>out
    cdef sockaddr_in6 *s6 = <sockaddr_in6 *>out
    memset(out, 0, sizeof(sockaddr_storage))
    if inet_pton(AF_INET, ip, &s4.sin_addr) == 1:
        s4.sin_family = AF_INET
        s4.sin_port = htons(port)
        return sizeof(sockaddr_in)
    if inet_pton(AF_INET6, ip, &s6.sin6_addr) == 1:
        s6.sin6_family = AF_INET6
        s6.sin6_port = htons(port)
        return sizeof(sockaddr_in6)
    return 0


cdef inline void mmsg_entry(mmsghdr *m, void *name, socklen_t name_len, iovec *iov) noexcept nogil:
    """One ``sendmmsg``/``recvmmsg`` entry of one buffer, no control data."""
    m.msg_hdr.msg_name = name
    m.msg_hdr.msg_namelen = name_len
    m.msg_hdr.msg_iov = iov
    m.msg_hdr.msg_iovlen = 1
    m.msg_hdr.msg_control = NULL
    m.msg_hdr.msg_controllen = 0
    m.msg_hdr.msg_flags = 0
