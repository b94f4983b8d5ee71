// The no-exceptions mode: built with -fno-exceptions -DVALORI_NO_EXCEPTIONS.
#define VALORI_NO_EXCEPTIONS
#include <gtest/gtest.h>

#include <vector>

#include "common.hpp"
#include "valori.hpp"

TEST(NoExceptions, ResultsCarryValuesAndErrors) {
    valori::Options o;
    o.dim = 2;
    valori::Result<valori::Database> r = valori::Database::open(test_dir("noexcept"), o);
    ASSERT_TRUE(r.ok());
    valori::Database db = std::move(r).value();
    valori::Result<std::uint64_t> id = db.insert(std::vector<float>{1, 2});
    ASSERT_TRUE(id);
    EXPECT_EQ(id.value(), 0u);
    valori::Result<std::uint64_t> bad = db.insert(std::vector<float>{1});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code(), valori::Errc::dimension);
    valori::Result<void> missing = db.erase(99);
    EXPECT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code(), valori::Errc::not_found);
    valori::Result<valori::Database> busy = valori::Database::open(test_dir("noexcept-busy"), o);
    ASSERT_TRUE(busy.ok());
    auto hits = db.search(std::vector<float>{1, 2}, 1);
    ASSERT_TRUE(hits.ok());
    EXPECT_EQ(hits.value().size(), 1u);
    valori::Result<valori::Kernel> k = valori::Kernel::create(valori::KernelConfig{});
    EXPECT_FALSE(k.ok());
    EXPECT_EQ(k.error().code(), valori::Errc::invalid_input);
    EXPECT_TRUE(db.close().ok());
}
