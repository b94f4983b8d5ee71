// valori::Database: every method, error mapping, move semantics. (Translation unit 1.)
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <thread>
#include <vector>

#include "common.hpp"
#include "valori.hpp"

using valori::Database;
using valori::Errc;
using valori::Error;

namespace {

Database open_new(const std::string &name, std::uint32_t dim) {
    valori::Options o;
    o.dim = dim;
    return Database::open(test_dir(name), o);
}

Errc code_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const Error &e) {
        EXPECT_NE(e.message(), "");
        return e.code();
    }
    return Errc::ok;
}

}  // namespace

TEST(Database, InsertSearchGetAndReopen) {
    std::string dir = test_dir("roundtrip");
    valori::StateHash hash{};
    {
        valori::Options o;
        o.dim = 4;
        Database db = Database::open(dir, o);
        ASSERT_TRUE(db.is_open());
        std::vector<float> a{1, 0, 0, 0};
        std::array<float, 4> b{0, 1, 0, 0};
        float c[4] = {0.5f, 0.5f, 0, 0};
        const std::uint8_t meta[] = {'c', 'u', 'p'};
        EXPECT_EQ(db.insert(a, 7, meta), 0u);
        EXPECT_EQ(db.insert(b), 1u);
        EXPECT_EQ(db.insert(valori::span<const float>(c, 4), std::nullopt), 2u);
        std::vector<float> batch{0, 0, 1, 0, 0, 0, 0, 1};
        std::vector<std::uint64_t> tags{8, 9};
        EXPECT_EQ(db.insert_batch(batch, 4, tags), 3u);
        EXPECT_EQ(db.count(), 5u);

        auto hits = db.search(a, 3);
        ASSERT_EQ(hits.size(), 3u);
        EXPECT_EQ(hits[0].id, 0u);
        EXPECT_DOUBLE_EQ(hits[0].distance, 0.0);
        EXPECT_EQ(hits[1].id, 2u);
        EXPECT_DOUBLE_EQ(hits[1].distance, 0.5);
        EXPECT_EQ(db.search(a, 10, 8).size(), 1u);
        EXPECT_EQ(db.search(a, 4000000000u).size(), 5u);

        EXPECT_EQ(db.get_vector(2), (std::vector<float>{0.5f, 0.5f, 0, 0}));
        EXPECT_EQ(db.get_meta(0), (std::vector<std::uint8_t>{'c', 'u', 'p'}));
        EXPECT_EQ(db.get_tag(0), std::optional<std::uint64_t>(7));
        EXPECT_EQ(db.get_tag(1), std::nullopt);
        db.set_tag(1, 5);
        EXPECT_EQ(db.get_tag(1), std::optional<std::uint64_t>(5));
        const std::uint8_t plate[] = {'p'};
        db.set_meta(1, plate);
        EXPECT_EQ(db.get_meta(1).size(), 1u);
        db.erase(4);
        EXPECT_EQ(db.count(), 4u);
        db.checkpoint();
        hash = db.state_hash();
        EXPECT_EQ(valori::to_hex(hash).size(), 64u);
        db.close();
        EXPECT_FALSE(db.is_open());
    }
    Database again = Database::open(dir);
    EXPECT_EQ(again.state_hash(), hash);
}

TEST(Database, ApproximateIndexOnEveryMetric) {
    const valori::Metric metrics[] = {valori::Metric::l2, valori::Metric::inner_product,
                                      valori::Metric::cosine};
    for (valori::Metric metric : metrics) {
        std::string dir = test_dir("index" + std::to_string(static_cast<int>(metric)));
        std::vector<float> rows;
        for (int i = 0; i < 400; ++i) {
            for (int j = 0; j < 6; ++j) rows.push_back(static_cast<float>((i * 7 + j * 13) % 31) / 40.0f - 0.3f);
        }
        std::vector<valori::Hit> approx;
        {
            valori::Options o;
            o.dim = 6;
            o.metric = metric;
            o.index_m = 8;
            o.index_ef_construction = 40;
            Database db = Database::open(dir, o);
            EXPECT_EQ(db.index_params().m, 8u);
            EXPECT_EQ(db.index_params().ef_construction, 40u);
            db.insert_batch(rows, 6);
            valori::span<const float> q(rows.data() + 6 * 17, 6);
            approx = db.search_approx(q, 5, 32);
            ASSERT_EQ(approx.size(), 5u);
            // An ef of at least the number of records is the exact search.
            auto exact = db.search(q, 5);
            auto full = db.search_approx(q, 5, 400);
            ASSERT_EQ(full.size(), exact.size());
            for (std::size_t i = 0; i < exact.size(); ++i) EXPECT_EQ(full[i].id, exact[i].id);
            EXPECT_EQ(code_of([&] { db.search_approx(q, 5, 0); }), Errc::invalid_input);
        }
        Database again = Database::open(dir);
        auto after = again.search_approx(valori::span<const float>(rows.data() + 6 * 17, 6), 5, 32);
        ASSERT_EQ(after.size(), approx.size());
        for (std::size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].id, approx[i].id);
    }
    Database plain = open_new("index_none", 2);
    EXPECT_EQ(plain.index_params().m, 0u);
    plain.insert(std::vector<float>{1, 2});
    EXPECT_EQ(code_of([&] { plain.search_approx(std::vector<float>{1, 2}, 1); }), Errc::invalid_input);
}

TEST(Database, GraphAndTraversal) {
    Database db = open_new("graph", 2);
    std::vector<float> v{0.5f, -0.5f};
    auto rec = db.insert(v);
    const std::uint8_t label[] = {'r'};
    auto a = db.create_node(1, rec, label);
    auto b = db.create_node(2);
    auto c = db.create_node(2);
    auto e1 = db.create_edge(7, a, b, 0.25f);
    auto e2 = db.create_edge(8, b, c);
    auto out = db.neighbors(a, valori::Direction::out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].id, e1);
    EXPECT_EQ(out[0].has_weight, 1u);
    EXPECT_DOUBLE_EQ(out[0].weight, 0.25);
    EXPECT_EQ(db.neighbors(b, valori::Direction::both).size(), 2u);
    auto hops = db.traverse(a, 5, valori::Direction::out);
    ASSERT_EQ(hops.size(), 2u);
    EXPECT_EQ(hops[0].node, b);
    EXPECT_EQ(hops[1].node, c);
    EXPECT_EQ(hops[1].depth, 2u);
    EXPECT_EQ(db.traverse(a, 5, valori::Direction::out, 7u).size(), 1u);
    db.delete_edge(e2);
    db.delete_node(c);
    db.erase(rec);  // cascades to node a
    EXPECT_EQ(code_of([&] { (void)db.neighbors(a, valori::Direction::out); }), Errc::not_found);
}

TEST(Database, ErrorClassesMapToErrc) {
    std::string dir = test_dir("errors");
    valori::Options o;
    o.dim = 3;
    Database db = Database::open(dir, o);
    std::vector<float> ok{1, 2, 3}, nan{1, std::numeric_limits<float>::quiet_NaN(), 3}, big{1e9f, 0, 0};
    db.insert(ok);
    EXPECT_EQ(code_of([&] { db.insert(std::vector<float>{1, 2}); }), Errc::dimension);
    EXPECT_EQ(code_of([&] { db.insert(nan); }), Errc::invalid_input);
    EXPECT_EQ(code_of([&] { db.insert(big); }), Errc::invalid_input);
    EXPECT_EQ(code_of([&] { (void)db.search(ok, 0); }), Errc::invalid_input);
    EXPECT_EQ(code_of([&] { db.erase(42); }), Errc::not_found);
    EXPECT_EQ(code_of([&] { (void)Database::open(dir); }), Errc::busy);
    EXPECT_EQ(code_of([&] { (void)Database::open("/proc/valori-cannot-create-here"); }), Errc::io);
    EXPECT_EQ(code_of([&] { (void)Database::open(test_dir("no-such-db")); }), Errc::not_found);
    try {
        db.insert(nan);
        FAIL() << "no exception";
    } catch (const Error &e) {
        EXPECT_EQ(e.raw_code(), VALORI_INVALID_INPUT_NOT_FINITE);
        EXPECT_NE(std::string(e.what()).find("component 1"), std::string::npos);
    }
    // Exports replay to the same hash; a damaged export is Corrupt.
    auto ex = db.export_log();
    EXPECT_EQ(valori::replay(ex), db.state_hash());
    ex[ex.size() / 2] ^= 0x40;
    EXPECT_EQ(code_of([&] { (void)valori::replay(ex); }), Errc::corrupt);
}

TEST(Database, MoveSemanticsNeverDoubleClose) {
    Database a = open_new("move", 2);
    std::vector<float> v{1, 1};
    a.insert(v);
    Database b = std::move(a);
    EXPECT_FALSE(a.is_open());  // NOLINT: moved-from state is specified
    EXPECT_TRUE(b.is_open());
    EXPECT_EQ(code_of([&] { (void)a.count(); }), Errc::misuse);
    Database c;
    c = std::move(b);
    EXPECT_EQ(c.count(), 1u);
    c = Database();  // closes
    EXPECT_FALSE(c.is_open());
}

TEST(Database, ConcurrentReadersAndWriters) {
    valori::Options o;
    o.dim = 4;
    o.durability = valori::Durability::group_commit;
    Database db = Database::open(test_dir("threads"), o);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) {
        threads.emplace_back([&db, t] {
            for (int i = 0; i < 25; i++) {
                std::vector<float> v{float(t), float(i), 0, 1};
                db.insert(v, std::uint64_t(t));
                (void)db.search(v, 3);
            }
        });
    }
    for (auto &th : threads) th.join();
    EXPECT_EQ(db.count(), 100u);
    EXPECT_EQ(db.search(std::vector<float>{0, 0, 0, 0}, 100, 2u).size(), 25u);
}

// Options{} leaves the metric unset (VALORI_METRIC_ANY): it reopens a database of any metric;
// an explicit other metric is refused.
TEST(Database, DefaultOptionsReopenAnyMetric) {
    EXPECT_FALSE(valori::Options{}.metric.has_value());
    const valori::Metric metrics[] = {valori::Metric::cosine, valori::Metric::inner_product, valori::Metric::l2};
    for (valori::Metric m : metrics) {
        std::string dir = test_dir("metric-" + std::to_string(static_cast<unsigned>(m)));
        valori::StateHash hash{};
        {
            valori::Options o;
            o.dim = 2;
            o.metric = m;
            Database db = Database::open(dir, o);
            db.insert(std::vector<float>{3, 4});
            hash = db.state_hash();
        }
        {
            Database db = Database::open(dir);  // default Options
            EXPECT_EQ(db.state_hash(), hash);
        }
        valori::Options same;
        same.metric = m;
        EXPECT_EQ(Database::open(dir, same).state_hash(), hash);
        valori::Options other;
        other.metric = m == valori::Metric::l2 ? valori::Metric::cosine : valori::Metric::l2;
        try {
            (void)Database::open(dir, other);
            ADD_FAILURE() << "a different metric was accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.code(), Errc::invalid_input);
            EXPECT_NE(std::string(e.what()).find("the database uses the"), std::string::npos) << e.what();
            EXPECT_EQ(std::string(e.what()).find("Some("), std::string::npos) << e.what();
        }
    }
}

TEST(Database, RecoveryReportNamesTheTornTail) {
    std::string dir = test_dir("recovery-report");
    valori::StateHash hash{};
    {
        valori::Options o;
        o.dim = 2;
        o.metric = valori::Metric::cosine;
        Database db = Database::open(dir, o);
        db.insert(std::vector<float>{3, 4});
        db.insert(std::vector<float>{1, 0});
        hash = db.state_hash();
        EXPECT_EQ(db.recovery_report().torn_bytes, 0u);
    }
    std::string wal;
    for (const auto &e : std::filesystem::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (name.rfind("wal-", 0) == 0 && (wal.empty() || e.path().string() > wal)) wal = e.path().string();
    }
    ASSERT_FALSE(wal.empty());
    std::uintmax_t size = std::filesystem::file_size(wal);
    {
        std::ofstream f(wal, std::ios::binary | std::ios::app);
        std::string garbage(1000, '\x5a');
        f << garbage;
    }
    Database db = Database::open(dir);
    valori::Recovery r = db.recovery_report();
    EXPECT_EQ(r.replayed, 2u);
    EXPECT_EQ(r.torn_bytes, 1000u);
    EXPECT_EQ(r.torn_offset, size);
    EXPECT_EQ(db.state_hash(), hash);
}
