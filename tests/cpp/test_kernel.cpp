// valori::Kernel (the embedded API) and its agreement with Database. (Translation unit 2.)
#include <gtest/gtest.h>

#include <vector>

#include "common.hpp"
#include "valori.hpp"

using valori::Errc;
using valori::Error;
using valori::Kernel;

namespace {
valori::KernelConfig config(std::uint32_t records) {
    valori::KernelConfig c;
    c.dim = 3;
    c.max_records = records;
    c.max_nodes = 4;
    c.max_edges = 4;
    c.meta_bytes = 32;
    c.label_bytes = 32;
    return c;
}
}  // namespace

TEST(Kernel, EveryMethodAndTheSameHashAsTheDatabase) {
    Kernel k = Kernel::create(config(8));
    valori::Options o;
    o.dim = 3;
    valori::Database db = valori::Database::open(test_dir("kernel-twin"), o);
    std::vector<float> v{0.25f, -2.0f, 3.0f};
    const std::uint8_t meta[] = {'m'};
    EXPECT_EQ(k.insert(v, 3, meta), db.insert(v, 3, meta));
    EXPECT_EQ(k.create_node(4, 0), db.create_node(4, 0));
    EXPECT_EQ(k.create_edge(9, 0, 0, -1.5f), db.create_edge(9, 0, 0, -1.5f));
    k.set_meta(0, meta);
    db.set_meta(0, meta);
    k.set_tag(0, std::nullopt);
    db.set_tag(0, std::nullopt);
    EXPECT_EQ(k.state_hash(), db.state_hash());
    // Replaying the database's exported commands into a fresh kernel gives its hash.
    EXPECT_EQ(valori::replay(db.export_log()), db.state_hash());

    EXPECT_EQ(k.count(), 1u);
    auto hits = k.search(std::vector<float>{0, 0, 0}, 5);
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_NEAR(hits[0].distance, 0.0625 + 4 + 9, 1e-9);
    auto raw = k.search_raw(std::vector<std::int32_t>{0, 0, 0}, 5);
    ASSERT_EQ(raw.size(), 1u);
    EXPECT_EQ(raw[0].distance_raw_lo, hits[0].distance_raw_lo);
    EXPECT_EQ(k.neighbors(0, valori::Direction::both).size(), 2u);
    EXPECT_TRUE(k.traverse(0, 3, valori::Direction::out).empty());
    EXPECT_EQ(k.get_vector(0), v);
    EXPECT_EQ(k.get_meta(0).size(), 1u);
    EXPECT_EQ(k.get_tag(0), std::nullopt);

    auto snap = k.snapshot();
    Kernel copy = Kernel::restore(config(8), snap);
    EXPECT_EQ(copy.state_hash(), k.state_hash());
    k.delete_edge(0);
    k.delete_node(0);
    k.erase(0);
    EXPECT_EQ(k.count(), 0u);
    EXPECT_NE(copy.state_hash(), k.state_hash());
}

TEST(Kernel, CallerMemoryFullAndErrors) {
    std::size_t need = Kernel::mem_size(config(2));
    std::vector<unsigned char> mem(need + 1);
    EXPECT_THROW((void)Kernel::in(config(2), mem.data() + 1, need - 1), Error);
    Kernel k = Kernel::in(config(2), mem.data() + 1, need);  // unaligned is fine
    std::vector<float> v{1, 2, 3};
    k.insert(v);
    k.insert(v);
    auto before = k.state_hash();
    try {
        k.insert(v);
        FAIL() << "no exception";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::full);
        EXPECT_EQ(e.raw_code(), VALORI_FULL_RECORDS);
    }
    EXPECT_EQ(k.state_hash(), before);
    try {
        k.apply(std::vector<std::uint8_t>{0xff, 0xff});
        FAIL() << "no exception";
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), Errc::corrupt);
    }
    EXPECT_THROW((void)Kernel::create(valori::KernelConfig{}), Error);  // dimension 0
}

TEST(Kernel, MoveKeepsTheOwnedMemory) {
    Kernel a = Kernel::create(config(4));
    std::vector<float> v{1, 2, 3};
    a.insert(v);
    auto h = a.state_hash();
    Kernel b = std::move(a);
    EXPECT_EQ(b.state_hash(), h);
    EXPECT_THROW((void)a.count(), Error);  // NOLINT: moved-from kernel has no handle
    Kernel c;
    c = std::move(b);
    EXPECT_EQ(c.get_vector(0), v);
}

// A traversal larger than the wrapper's first buffer: grown once to the exact size reported.
TEST(Kernel, TraverseBeyondTheFirstBuffer) {
    valori::KernelConfig c;
    c.dim = 1;
    c.max_nodes = 41;
    c.max_edges = 40;
    Kernel k = Kernel::create(c);
    valori::Options o;
    o.dim = 1;
    valori::Database db = valori::Database::open(test_dir("traverse-large"), o);
    for (std::uint64_t i = 0; i < 41; i++) {
        EXPECT_EQ(k.create_node(0), i);
        EXPECT_EQ(db.create_node(0), i);
    }
    for (std::uint64_t i = 1; i < 41; i++) {  // a star: 0 -> every other node
        k.create_edge(0, 0, i);
        db.create_edge(0, 0, i);
    }
    auto from_kernel = k.traverse(0, 2, valori::Direction::out);
    auto from_db = db.traverse(0, 2, valori::Direction::out);
    ASSERT_EQ(from_kernel.size(), 40u);
    ASSERT_EQ(from_db.size(), 40u);
    for (std::size_t i = 0; i < 40; i++) {
        EXPECT_EQ(from_kernel[i].node, i + 1);
        EXPECT_EQ(from_kernel[i].depth, 1u);
        EXPECT_EQ(from_db[i].node, from_kernel[i].node);
    }
}
