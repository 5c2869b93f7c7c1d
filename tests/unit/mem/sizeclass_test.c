/*
 * tests/unit/mem/sizeclass_test.c: the size-class table's spacing and the lookup table.
 */
#include "mem/base.h"
#include "mem/sizeclass.h"
#include "tests/harness.h"

TEST(table_shape)
{
    CHECK_EQ(mem_sc_size[0], 16);
    CHECK_EQ(mem_sc_size[MEM_SC_COUNT - 1], MEM_SC_MAX);
    for (unsigned c = 1; c < MEM_SC_COUNT; c++) {
        uint32_t a = mem_sc_size[c - 1], b = mem_sc_size[c];
        CHECK(b > a);
        CHECK(b % 16 == 0);
        CHECK(b * 4 <= a * 5 || b - a == 16);
        if (a >= 128)
            CHECK(b * 4 <= a * 5);
    }
}

TEST(lookup_matches)
{
    for (size_t len = 0; len <= MEM_SC_MAX; len++) {
        unsigned c = mem_sc_of(len);
        REQUIRE(c < MEM_SC_COUNT);
        CHECK(mem_sc_size[c] >= len);
        CHECK(c == 0 || mem_sc_size[c - 1] < len); /* the smallest that fits */
        CHECK_EQ(c, mem_sc_of_slow(len));
    }
    CHECK_EQ(mem_sc_of(MEM_SC_MAX + 1), MEM_SC_COUNT);
    CHECK_EQ(mem_sc_of(SIZE_MAX), MEM_SC_COUNT);
    CHECK_EQ(mem_sc_of_slow(MEM_SC_MAX + 1), MEM_SC_COUNT);
}

int main(void)
{
    RUN(table_shape);
    RUN(lookup_matches);
    return TEST_SUMMARY();
}
