/* Byte layout of fastpath's shared-memory counter segment.
 *
 * Kept in C so the offsets are fixed by the compiler for every reader and writer, and checked
 * by static asserts.  One segment = header, then `nshards` shards, each a shard header followed
 * by `slots_per_shard` slots.  Each shard has exactly one writer process.
 */
#ifndef FASTPATH_COUNTER_LAYOUT_H
#define FASTPATH_COUNTER_LAYOUT_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <sched.h>

#define FP_MAGIC 0x3130525443504646ULL
#define FP_LAYOUT_VERSION 1u
#define FP_KEY_MAX 63
#define FP_TEXT_A_MAX 63
#define FP_TEXT_B_MAX 127

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t nshards;
    uint32_t slots_per_shard;
    uint32_t slot_size;
    uint64_t segment_id;
    uint64_t created_ns;
    uint64_t supervisor_pid;
    uint8_t  reserved[16];
} fp_segment_header;

typedef struct {
    uint64_t writer_pid;
    uint64_t heartbeat_ns;
    uint64_t restarts;
    uint64_t high_water;   /* slots [0, high_water) have ever been used: readers scan only these */
    uint64_t live_slots;
    uint8_t  reserved[24];
} fp_shard_header;

typedef struct {
    uint64_t seq;           /* seqlock: odd while kind/key/text are being rewritten */
    uint32_t kind;
    uint32_t state;
    uint64_t tx;            /* payload bytes sent toward the target (client upload) */
    uint64_t rx;            /* payload bytes received from the target (client download) */
    uint64_t tx_packets;
    uint64_t rx_packets;
    uint64_t created_ns;    /* wall clock, ns since the epoch */
    uint64_t last_active_ns;
    uint64_t conn_id;
    uint64_t stream_id;
    uint32_t user_slot;     /* index + 1 of the user-total slot in the same shard, 0 = none */
    uint32_t conn_slot;     /* index + 1 of the owning connection slot, 0 = none */
    uint64_t flags;
    uint64_t extra[4];      /* kind-specific; user slots: extra[0] = traffic cap + 1 (0 = none) */
    uint8_t  key_len;
    char     key[FP_KEY_MAX];
    uint8_t  text_a_len;
    char     text_a[FP_TEXT_A_MAX];
    uint8_t  text_b_len;
    char     text_b[FP_TEXT_B_MAX];
} fp_slot;

_Static_assert(sizeof(fp_segment_header) == 64, "segment header is 64 bytes");
_Static_assert(sizeof(fp_shard_header) == 64, "shard header is 64 bytes");
_Static_assert(sizeof(fp_slot) == 384, "slot is 384 bytes");
_Static_assert(offsetof(fp_slot, key_len) == 128, "key at 128");

/* Single-writer counters: a relaxed atomic store of load+n never tears, needs no lock prefix. */
static inline void fp_add_u64(uint64_t *p, uint64_t n) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
/* The multi-writer alternative, a locked read-modify-write: only the benchmarks use it, as the
 * like-for-like C baseline of fp_add_u64 (bench/test_bench_counters.py). */
static inline void fp_locked_add_u64(uint64_t *p, uint64_t n) { __atomic_fetch_add(p, n, __ATOMIC_SEQ_CST); }
static inline void fp_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t fp_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint64_t fp_load_acquire(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

/* Seqlock writer side: make seq odd, publish the fields, make it even again. */
static inline void fp_seq_begin(fp_slot *s) {
    __atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}
static inline void fp_seq_end(fp_slot *s) {
    __atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELEASE);
}
/* Reader side: acquire fence before re-reading seq so field reads are not moved after it. */
static inline void fp_read_fence(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }

/* Reader side: wait out a writer inside its section and return the (even) seq to compare
 * after reading.  A writer descheduled mid-section is waited for (yielding the CPU after a
 * short spin).  One that died mid-section leaves seq odd until the shard's next writer
 * closes it: after FP_SEQ_GIVE_UP_NS a reader takes the slot as it is (possibly torn) rather
 * than hang a request on a dead process. */
#define FP_SEQ_GIVE_UP_NS 1000000000ull
static inline uint64_t fp_seq_stable(const fp_slot *s) {
    uint64_t q = fp_load_acquire(&s->seq);
    uint64_t deadline = 0;
    for (uint32_t n = 1; q & 1; n++) {
        if ((n & 1023) == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
            if (deadline == 0)
                deadline = now + FP_SEQ_GIVE_UP_NS;
            else if (now > deadline)
                break;
            sched_yield();
        }
        q = fp_load_acquire(&s->seq);
    }
    return q;
}

/* A torn-free copy of a slot (see fp_seq_stable for a writer that died mid-section). */
static inline void fp_slot_copy(const fp_slot *s, fp_slot *out) {
    for (;;) {
        uint64_t q = fp_seq_stable(s);
        memcpy(out, s, sizeof *out);
        fp_read_fence();
        if (fp_load_u64(&s->seq) == q)
            return;
    }
}

static inline uint64_t fp_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline fp_shard_header *fp_shard_hdr(char *base, uint32_t shard, uint32_t slots_per_shard) {
    return (fp_shard_header *)(base + sizeof(fp_segment_header)
        + (size_t)shard * (sizeof(fp_shard_header) + (size_t)slots_per_shard * sizeof(fp_slot)));
}
static inline fp_slot *fp_shard_slots(char *base, uint32_t shard, uint32_t slots_per_shard) {
    return (fp_slot *)((char *)fp_shard_hdr(base, shard, slots_per_shard) + sizeof(fp_shard_header));
}
static inline size_t fp_segment_size(uint32_t nshards, uint32_t slots_per_shard) {
    return sizeof(fp_segment_header)
        + (size_t)nshards * (sizeof(fp_shard_header) + (size_t)slots_per_shard * sizeof(fp_slot));
}
#endif
