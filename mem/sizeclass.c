/*
 * mem/sizeclass.c: the size-class table and its lookup table.
 *
 * Immutable after the constructor below runs (before main), so every thread reads it
 * without synchronisation.
 */
#include "mem/base.h"
#include "mem/sizeclass.h"

/* The table as an X-macro so that every pair can be checked at compile time. */
#define SC_LIST(X)                                                                                 \
    X(0, 16)                                                                                       \
    X(1, 32)                                                                                       \
    X(2, 48)                                                                                       \
    X(3, 64)                                                                                       \
    X(4, 80)                                                                                       \
    X(5, 96)                                                                                       \
    X(6, 112)                                                                                      \
    X(7, 128)                                                                                      \
    X(8, 160)                                                                                      \
    X(9, 192)                                                                                      \
    X(10, 224)                                                                                     \
    X(11, 256)                                                                                     \
    X(12, 320)                                                                                     \
    X(13, 384)                                                                                     \
    X(14, 448)                                                                                     \
    X(15, 512)                                                                                     \
    X(16, 640)                                                                                     \
    X(17, 768)                                                                                     \
    X(18, 896)                                                                                     \
    X(19, 1024)                                                                                    \
    X(20, 1280)                                                                                    \
    X(21, 1536)                                                                                    \
    X(22, 1792)                                                                                    \
    X(23, 2048)                                                                                    \
    X(24, 2560)                                                                                    \
    X(25, 3072)                                                                                    \
    X(26, 3584)                                                                                    \
    X(27, 4096)                                                                                    \
    X(28, 5120)                                                                                    \
    X(29, 6144)                                                                                    \
    X(30, 7168)                                                                                    \
    X(31, 8192)                                                                                    \
    X(32, 10240)                                                                                   \
    X(33, 12288)                                                                                   \
    X(34, 14336)                                                                                   \
    X(35, 16384)                                                                                   \
    X(36, 20480)                                                                                   \
    X(37, 24576)                                                                                   \
    X(38, 28672)                                                                                   \
    X(39, 32768)                                                                                   \
    X(40, 40960)                                                                                   \
    X(41, 49152)                                                                                   \
    X(42, 57344)                                                                                   \
    X(43, 65536)                                                                                   \
    X(44, 81920)                                                                                   \
    X(45, 98304)                                                                                   \
    X(46, 114688)                                                                                  \
    X(47, 131072)                                                                                  \
    X(48, 163840)                                                                                  \
    X(49, 196608)                                                                                  \
    X(50, 229376)                                                                                  \
    X(51, 262144)

#define SC_ENUM(i, s) SC_##i = (s),
enum { SC_LIST(SC_ENUM) };
#define SC_VAL(i, s) (s),
const uint32_t mem_sc_size[MEM_SC_COUNT] = {SC_LIST(SC_VAL)};

/* Spacing rule: 16-aligned, increasing, and at most 25% growth except for the 16-byte steps
 * that the alignment forces below 128 B. */
#define SC_OK(a, b)                                                                                \
    MEM_STATIC_ASSERT(SC_##b > SC_##a && SC_##b % MEM_SC_ALIGN == 0 &&                             \
                          (SC_##b * 4 <= SC_##a * 5 || SC_##b - SC_##a == MEM_SC_ALIGN),           \
                      "size class spacing")
SC_OK(0, 1);
SC_OK(1, 2);
SC_OK(2, 3);
SC_OK(3, 4);
SC_OK(4, 5);
SC_OK(5, 6);
SC_OK(6, 7);
SC_OK(7, 8);
SC_OK(8, 9);
SC_OK(9, 10);
SC_OK(10, 11);
SC_OK(11, 12);
SC_OK(12, 13);
SC_OK(13, 14);
SC_OK(14, 15);
SC_OK(15, 16);
SC_OK(16, 17);
SC_OK(17, 18);
SC_OK(18, 19);
SC_OK(19, 20);
SC_OK(20, 21);
SC_OK(21, 22);
SC_OK(22, 23);
SC_OK(23, 24);
SC_OK(24, 25);
SC_OK(25, 26);
SC_OK(26, 27);
SC_OK(27, 28);
SC_OK(28, 29);
SC_OK(29, 30);
SC_OK(30, 31);
SC_OK(31, 32);
SC_OK(32, 33);
SC_OK(33, 34);
SC_OK(34, 35);
SC_OK(35, 36);
SC_OK(36, 37);
SC_OK(37, 38);
SC_OK(38, 39);
SC_OK(39, 40);
SC_OK(40, 41);
SC_OK(41, 42);
SC_OK(42, 43);
SC_OK(43, 44);
SC_OK(44, 45);
SC_OK(45, 46);
SC_OK(46, 47);
SC_OK(47, 48);
SC_OK(48, 49);
SC_OK(49, 50);
SC_OK(50, 51);
MEM_STATIC_ASSERT(SC_0 == MEM_SC_ALIGN, "smallest class");
MEM_STATIC_ASSERT(SC_39 == MEM_SC_SMALL_MAX, "largest class of one span");
MEM_STATIC_ASSERT(SC_51 == MEM_SC_MAX, "largest class");
MEM_STATIC_ASSERT(MEM_SC_COUNT == 52, "class count");
MEM_STATIC_ASSERT(MEM_SC_COUNT <= 0x40, "class ids and sampled-span tags (0x80 + id) must "
                                        "stay below the other span tags (0xF0...)");

uint8_t mem_sc_lookup[MEM_SC_LOOKUP_LEN];
uint8_t mem_sc_run[MEM_SC_COUNT];

unsigned mem_sc_of_slow(size_t len)
{
    if (len > MEM_SC_MAX)
        return MEM_SC_COUNT;
    if (len <= 128)
        return len == 0 ? 0 : (unsigned)((len + 15) / 16 - 1);
    /* Four classes per power of two: the top bit picks the group, the next two bits the
     * quarter within it. */
    size_t x = len - 1;
    unsigned b = 63u - (unsigned)__builtin_clzll((unsigned long long)x);
    unsigned q = (unsigned)(x >> (b - 2)) & 3u;
    unsigned c = 8u + (b - 7u) * 4u + q;
    MEM_ASSERT(c < MEM_SC_COUNT);
    MEM_ASSERT(mem_sc_size[c] >= len);
    return c;
}

__attribute__((constructor)) static void sc_init(void)
{
    for (size_t i = 0; i < MEM_SC_LOOKUP_LEN; i++) {
        unsigned c = mem_sc_of_slow(i * MEM_SC_ALIGN);
        MEM_ASSERT(c < MEM_SC_COUNT);
        mem_sc_lookup[i] = (uint8_t)c;
    }
    /* Classes up to 32 KiB fill one 64 KiB span. A larger class gets the shortest run of
     * spans (at most MEM_SC_RUN_MAX) that it divides exactly, or else the run that wastes
     * the smallest share of its bytes. */
    for (unsigned c = 0; c < MEM_SC_COUNT; c++) {
        unsigned best = 1;
        if (mem_sc_size[c] > MEM_SC_SMALL_MAX) {
            double best_waste = 2.0;
            for (unsigned k = 1; k <= MEM_SC_RUN_MAX; k++) {
                size_t run = (size_t)k * MEM_SC_SPAN_BYTES;
                if (run < mem_sc_size[c])
                    continue;
                double waste = (double)(run % mem_sc_size[c]) / (double)run;
                if (waste + 1e-9 < best_waste) {
                    best_waste = waste;
                    best = k;
                }
                if (waste == 0.0)
                    break;
            }
        }
        MEM_ASSERT((size_t)best * MEM_SC_SPAN_BYTES >= mem_sc_size[c]);
        mem_sc_run[c] = (uint8_t)best;
    }
}
