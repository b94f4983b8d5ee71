// valori.hpp: a header-only C++17 layer over valori.h (and nothing else).
//
// - Move-only RAII handles: valori::Database (the durable database) and valori::Kernel (the
//   embedded kernel, in memory it owns or memory you provide).
// - Errors: valori::Error (a code from valori::Errc plus the library's message). By default
//   failures throw valori::Error. Define VALORI_NO_EXCEPTIONS before including this header
//   and every fallible method returns a [[nodiscard]] valori::Result<T> instead.
// - Inputs: valori::span<const T> views accept a pointer + size, std::vector, std::array and
//   C arrays, so calls never copy the caller's data.
// - Thread safety follows valori.h: const Database methods and every Database method except
//   close() may run concurrently; a Kernel needs external synchronisation for non-const calls.
#ifndef VALORI_HPP
#define VALORI_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(VALORI_NO_EXCEPTIONS)
#include <exception>
#endif

#include "valori.h"

namespace valori {

/// Primary result codes (the low byte of every valori.h code).
enum class Errc : int {
    ok = VALORI_OK,
    internal = VALORI_INTERNAL,
    misuse = VALORI_MISUSE,
    invalid_input = VALORI_INVALID_INPUT,
    dimension = VALORI_DIMENSION,
    full = VALORI_FULL,
    not_found = VALORI_NOT_FOUND,
    exists = VALORI_EXISTS,
    insufficient_size = VALORI_INSUFFICIENT_SIZE,
    corrupt = VALORI_CORRUPT,
    busy = VALORI_BUSY,
    io = VALORI_IO,
    poisoned = VALORI_POISONED,
};

/// A failed call: the code (primary and extended) and the library's message.
class Error
#if !defined(VALORI_NO_EXCEPTIONS)
    : public std::exception
#endif
{
  public:
    Error() = default;
    Error(int rc, std::string message) : rc_(rc), message_(std::move(message)) {}
    /// The primary code.
    Errc code() const noexcept { return static_cast<Errc>(VALORI_PRIMARY(rc_)); }
    /// The full (possibly extended) valori.h code.
    int raw_code() const noexcept { return rc_; }
    const std::string &message() const noexcept { return message_; }
    const char *what() const noexcept
#if !defined(VALORI_NO_EXCEPTIONS)
        override
#endif
    {
        return message_.c_str();
    }

  private:
    int rc_ = VALORI_OK;
    std::string message_;
};

/// A value or an Error (the return type of fallible calls with VALORI_NO_EXCEPTIONS).
template <class T>
class [[nodiscard]] Result {
  public:
    Result(T value) : value_(std::move(value)) {}
    Result(Error error) : error_(std::move(error)) {}
    bool ok() const noexcept { return value_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    T &value() & { return *value_; }
    T &&value() && { return std::move(*value_); }
    const Error &error() const noexcept { return error_; }

  private:
    std::optional<T> value_;
    Error error_;
};

/// The result of calls that produce nothing.
template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {}
    bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    const Error &error() const noexcept { return error_; }

  private:
    Error error_;
    bool ok_ = true;
};

namespace detail {
#if defined(VALORI_NO_EXCEPTIONS)
template <class T>
using ret = Result<T>;
template <class T>
inline Result<T> finish(Result<T> r) {
    return r;
}
#else
template <class T>
using ret = T;
template <class T>
inline T finish(Result<T> r) {
    if (!r.ok()) throw r.error();
    return std::move(r).value();
}
inline void finish(Result<void> r) {
    if (!r.ok()) throw r.error();
}
#endif

inline Error error_of(int rc, const char *message) {
    return Error(rc, message != nullptr && message[0] != '\0' ? message : valori_errstr(rc));
}
}  // namespace detail

/// A read-only view of contiguous elements (C++17 has no std::span).
template <class T>
class span {
  public:
    constexpr span() noexcept = default;
    constexpr span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <std::size_t N>
    constexpr span(T (&array)[N]) noexcept : data_(array), size_(N) {}
    template <class C, class = decltype(std::declval<C &>().data()),
              class = std::enable_if_t<std::is_convertible_v<decltype(std::declval<C &>().data()), T *>>>
    constexpr span(C &container) noexcept : data_(container.data()), size_(container.size()) {}
    template <class C, class = decltype(std::declval<const C &>().data()),
              class = std::enable_if_t<std::is_convertible_v<decltype(std::declval<const C &>().data()), T *>>>
    constexpr span(const C &container) noexcept : data_(container.data()), size_(container.size()) {}
    constexpr T *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }

  private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

/// A state hash: identical on every machine for the same commands.
using StateHash = std::array<std::uint8_t, 32>;

/// Lower-case hex of a state hash.
inline std::string to_hex(const StateHash &hash) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(64);
    for (std::uint8_t b : hash) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 0xf]);
    }
    return s;
}

/// One search result (id, real distance, exact 128-bit distance).
using Hit = valori_hit;
/// One graph edge.
using Edge = valori_edge;
/// One node reached by a traversal.
using Hop = valori_hop;

enum class Metric : std::uint32_t {
    l2 = VALORI_METRIC_L2,
    inner_product = VALORI_METRIC_INNER_PRODUCT,
    cosine = VALORI_METRIC_COSINE,
};

enum class Direction : std::uint32_t {
    out = VALORI_DIRECTION_OUT,
    in = VALORI_DIRECTION_IN,
    both = VALORI_DIRECTION_BOTH,
};

namespace detail {
/// Runs a C call that fills a caller buffer of `guess` elements, growing it once to the
/// length the library asks for; `error` turns a failing code into an Error.
template <class T, class F, class E>
inline Result<std::vector<T>> fill(std::size_t guess, F &&call, E &&error) {
    std::vector<T> out(guess);
    std::size_t n = 0;
    int rc = call(out.data(), out.size(), &n);
    if (rc == VALORI_INSUFFICIENT_SIZE) {
        out.resize(n);
        rc = call(out.data(), out.size(), &n);
    }
    if (rc != VALORI_OK) return error(rc);
    out.resize(n);
    return out;
}

/// Runs a traversal, growing the buffer to the exact size the library reports; repeats only
/// if another thread added nodes between the calls.
template <class F, class E>
inline Result<std::vector<Hop>> traverse(F &&call, E &&error) {
    std::vector<Hop> out(16);
    for (;;) {
        std::size_t n = 0;
        int rc = call(out.data(), out.size(), &n);
        if (rc == VALORI_INSUFFICIENT_SIZE) {
            out.resize(n);
            continue;
        }
        if (rc != VALORI_OK) return error(rc);
        out.resize(n);
        return out;
    }
}
}  // namespace detail

#if defined(VALORI_HOSTED)
/// What opening a database found and did (`valori_recovery`).
using Recovery = valori_recovery;

enum class Durability : std::uint32_t {
    fsync = VALORI_DURABILITY_FSYNC,
    group_commit = VALORI_DURABILITY_GROUP_COMMIT,
    none = VALORI_DURABILITY_NONE,
};

/// Options for Database::open.
struct Options {
    std::uint32_t dim = 0;  ///< required to create; 0 accepts an existing database's
    /// The metric to create with, which an existing database's must equal; std::nullopt (the
    /// default) accepts an existing database's and creates with l2.
    std::optional<Metric> metric;
    Durability durability = Durability::fsync;
    std::uint64_t checkpoint_wal_bytes = 256ull << 20;
    bool create = true;
    bool salvage = false;
    /// An approximate (HNSW) index: links per node (2 to 64, 16 is usual); 0 (the default):
    /// none for a new database, an existing database's as it is.
    std::uint32_t index_m = 0;
    /// Candidates per insert of the index (index_m to 65536, 200 is usual).
    std::uint32_t index_ef_construction = 200;
};

/// A database's approximate index.
struct IndexParams {
    std::uint32_t m = 0;                ///< links per node (0: no index)
    std::uint32_t ef_construction = 0;  ///< candidates per insert
};

/// A durable database (a directory). Move-only; closed by the destructor or close().
class Database {
  public:
    Database() noexcept = default;
    Database(const Database &) = delete;
    Database &operator=(const Database &) = delete;
    Database(Database &&other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
    Database &operator=(Database &&other) noexcept {
        if (this != &other) {
            valori_close(&db_);
            db_ = std::exchange(other.db_, nullptr);
        }
        return *this;
    }
    ~Database() { valori_close(&db_); }

    /// Opens (or creates) the database in directory `path`.
    static detail::ret<Database> open(const std::string &path, const Options &options = {}) {
        valori_options o;
        valori_options_init(&o);
        o.dim = options.dim;
        o.metric = options.metric ? static_cast<std::uint32_t>(*options.metric) : VALORI_METRIC_ANY;
        o.durability = static_cast<std::uint32_t>(options.durability);
        o.checkpoint_wal_bytes = options.checkpoint_wal_bytes;
        o.create = options.create ? 1 : 0;
        o.salvage = options.salvage ? 1 : 0;
        o.index_m = options.index_m;
        o.index_ef_construction = options.index_m == 0 ? 0 : options.index_ef_construction;
        Database d;
        int rc = valori_open(path.c_str(), &o, &d.db_);
        if (rc != VALORI_OK) return detail::finish(Result<Database>(detail::error_of(rc, valori_errmsg(nullptr))));
        return detail::finish(Result<Database>(std::move(d)));
    }

    /// Flushes and closes now, reporting errors (the destructor cannot).
    detail::ret<void> close() { return detail::finish(status(valori_close(&db_), nullptr)); }

    bool is_open() const noexcept { return db_ != nullptr; }
    valori_db *c_handle() const noexcept { return db_; }

    /// Inserts a vector with an optional tag and metadata; returns its id.
    detail::ret<std::uint64_t> insert(span<const float> vector, std::optional<std::uint64_t> tag = std::nullopt,
                                      span<const std::uint8_t> meta = {}) {
        std::uint64_t id = 0;
        int rc = valori_insert(db_, vector.data(), vector.size(), tag ? &*tag : nullptr, meta.data(), meta.size(), &id);
        return detail::finish(value(rc, id));
    }

    /// Inserts `vectors.size() / dim` rows atomically; returns the first (consecutive) id.
    detail::ret<std::uint64_t> insert_batch(span<const float> vectors, std::size_t dim,
                                            span<const std::uint64_t> tags = {}) {
        std::uint64_t first = 0;
        std::size_t n = dim == 0 ? 0 : vectors.size() / dim;
        if (dim == 0 || n * dim != vectors.size() || (!tags.empty() && tags.size() != n)) {
            return detail::finish(Result<std::uint64_t>(detail::error_of(VALORI_INVALID_INPUT,
                "insert_batch: vectors.size() must be a multiple of dim and tags empty or one per row")));
        }
        int rc = valori_insert_batch(db_, vectors.data(), n, dim, tags.empty() ? nullptr : tags.data(), &first);
        return detail::finish(value(rc, first));
    }

    detail::ret<void> erase(std::uint64_t id) { return detail::finish(status(valori_delete(db_, id))); }
    detail::ret<void> set_meta(std::uint64_t id, span<const std::uint8_t> meta) {
        return detail::finish(status(valori_set_meta(db_, id, meta.data(), meta.size())));
    }
    detail::ret<void> set_tag(std::uint64_t id, std::optional<std::uint64_t> tag) {
        return detail::finish(status(valori_set_tag(db_, id, tag ? &*tag : nullptr)));
    }

    detail::ret<std::uint64_t> create_node(std::uint32_t kind, std::optional<std::uint64_t> record = std::nullopt,
                                           span<const std::uint8_t> label = {}) {
        std::uint64_t id = 0;
        int rc = valori_create_node(db_, kind, record ? &*record : nullptr, label.data(), label.size(), &id);
        return detail::finish(value(rc, id));
    }
    detail::ret<void> delete_node(std::uint64_t id) { return detail::finish(status(valori_delete_node(db_, id))); }
    detail::ret<std::uint64_t> create_edge(std::uint32_t kind, std::uint64_t from, std::uint64_t to,
                                           std::optional<float> weight = std::nullopt) {
        std::uint64_t id = 0;
        int rc = valori_create_edge(db_, kind, from, to, weight ? &*weight : nullptr, &id);
        return detail::finish(value(rc, id));
    }
    detail::ret<void> delete_edge(std::uint64_t id) { return detail::finish(status(valori_delete_edge(db_, id))); }

    /// Exact k nearest records, ordered by (distance, id).
    detail::ret<std::vector<Hit>> search(span<const float> query, std::uint32_t k,
                                         std::optional<std::uint64_t> tag = std::nullopt) const {
        std::uint64_t count = 0;
        valori_count(db_, &count);
        std::size_t guess = static_cast<std::size_t>(count < k ? count : k);
        const std::uint64_t *t = tag ? &*tag : nullptr;
        return detail::finish(fill<Hit>(guess, [&](Hit *out, std::size_t cap, std::size_t *n) {
            return valori_search(db_, query.data(), query.size(), k, t, out, cap, n);
        }));
    }

    /// Approximate k nearest records through the index, keeping `ef` candidates (1 to 65536;
    /// at least the number of records is exact), ordered by (distance, id); the same commands
    /// give the same answers on every machine. An error (invalid_input) without an index.
    detail::ret<std::vector<Hit>> search_approx(span<const float> query, std::uint32_t k, std::uint32_t ef = 64,
                                                std::optional<std::uint64_t> tag = std::nullopt) const {
        std::uint64_t count = 0;
        valori_count(db_, &count);
        std::size_t guess = static_cast<std::size_t>(count < k ? count : k);
        const std::uint64_t *t = tag ? &*tag : nullptr;
        return detail::finish(fill<Hit>(guess, [&](Hit *out, std::size_t cap, std::size_t *n) {
            return valori_search_approx(db_, query.data(), query.size(), k, t, ef, out, cap, n);
        }));
    }

    /// The approximate index's parameters ({0, 0} without one).
    detail::ret<IndexParams> index_params() const {
        IndexParams p;
        int rc = valori_index_params(db_, &p.m, &p.ef_construction);
        return detail::finish(value(rc, p));
    }

    detail::ret<std::vector<Edge>> neighbors(std::uint64_t node, Direction direction) const {
        return detail::finish(fill<Edge>(8, [&](Edge *out, std::size_t cap, std::size_t *n) {
            return valori_neighbors(db_, node, static_cast<std::uint32_t>(direction), out, cap, n);
        }));
    }

    detail::ret<std::vector<Hop>> traverse(std::uint64_t start, std::uint32_t hops, Direction direction,
                                           std::optional<std::uint32_t> kind = std::nullopt) const {
        const std::uint32_t *k = kind ? &*kind : nullptr;
        return detail::finish(detail::traverse(
            [&](Hop *out, std::size_t cap, std::size_t *n) {
                return valori_traverse(db_, start, hops, static_cast<std::uint32_t>(direction), k, out, cap, n);
            },
            [this](int rc) { return error(rc); }));
    }

    detail::ret<std::uint64_t> count() const {
        std::uint64_t n = 0;
        int rc = valori_count(db_, &n);
        return detail::finish(value(rc, n));
    }
    detail::ret<std::vector<float>> get_vector(std::uint64_t id) const {
        return detail::finish(fill<float>(16, [&](float *out, std::size_t cap, std::size_t *n) {
            return valori_get_vector(db_, id, out, cap, n);
        }));
    }
    detail::ret<std::vector<std::uint8_t>> get_meta(std::uint64_t id) const {
        return detail::finish(fill<std::uint8_t>(64, [&](std::uint8_t *out, std::size_t cap, std::size_t *n) {
            return valori_get_meta(db_, id, out, cap, n);
        }));
    }
    detail::ret<std::optional<std::uint64_t>> get_tag(std::uint64_t id) const {
        std::uint64_t tag = 0;
        int has = 0;
        int rc = valori_get_tag(db_, id, &tag, &has);
        return detail::finish(value(rc, has ? std::optional<std::uint64_t>(tag) : std::nullopt));
    }
    detail::ret<StateHash> state_hash() const {
        StateHash h{};
        int rc = valori_state_hash(db_, h.data());
        return detail::finish(value(rc, h));
    }
    detail::ret<void> checkpoint() { return detail::finish(status(valori_checkpoint(db_))); }
    /// What opening found and did: the snapshot and WAL records recovered, and a damaged tail
    /// of the log cut off (`torn_bytes` at `torn_offset`).
    detail::ret<Recovery> recovery_report() const {
        Recovery r{};
        int rc = valori_recovery_report(db_, &r);
        return detail::finish(value(rc, r));
    }
    /// The newest snapshot's state and the commands after it (replay with replay()).
    detail::ret<std::vector<std::uint8_t>> export_log() const {
        return detail::finish(fill<std::uint8_t>(0, [&](std::uint8_t *out, std::size_t cap, std::size_t *n) {
            return valori_export(db_, out, cap, n);
        }));
    }

  private:
    Error error(int rc) const { return detail::error_of(rc, db_ != nullptr ? valori_errmsg(db_) : nullptr); }
    Result<void> status(int rc) const { return rc == VALORI_OK ? Result<void>() : Result<void>(error(rc)); }
    static Result<void> status(int rc, std::nullptr_t) {
        return rc == VALORI_OK ? Result<void>() : Result<void>(detail::error_of(rc, nullptr));
    }
    template <class T>
    Result<T> value(int rc, T v) const {
        return rc == VALORI_OK ? Result<T>(std::move(v)) : Result<T>(error(rc));
    }
    template <class T, class F>
    Result<std::vector<T>> fill(std::size_t guess, F &&call) const {
        return detail::fill<T>(guess, std::forward<F>(call), [this](int rc) { return error(rc); });
    }

    valori_db *db_ = nullptr;
};

/// Rebuilds the state an export describes and returns its hash (Corrupt if it does not
/// reproduce the hash the export recorded).
inline detail::ret<StateHash> replay(span<const std::uint8_t> exported) {
    StateHash h{};
    int rc = valori_replay(exported.data(), exported.size(), h.data());
    if (rc != VALORI_OK) return detail::finish(Result<StateHash>(detail::error_of(rc, nullptr)));
    return detail::finish(Result<StateHash>(h));
}

#endif  // VALORI_HOSTED

/// Configuration of an embedded kernel.
struct KernelConfig {
    std::uint32_t dim = 0;
    Metric metric = Metric::l2;
    std::uint32_t max_records = 0;
    std::uint32_t max_nodes = 0;
    std::uint32_t max_edges = 0;
    std::uint32_t meta_bytes = 0;
    std::uint32_t label_bytes = 0;

    valori_kernel_config c() const noexcept {
        return valori_kernel_config{dim, static_cast<std::uint32_t>(metric), max_records, max_nodes,
                                    max_edges, meta_bytes, label_bytes};
    }
};

/// The embedded kernel, in memory it owns (Kernel::create) or memory you provide
/// (Kernel::in, e.g. a static buffer). Move-only; the memory must outlive the Kernel.
class Kernel {
  public:
    Kernel() noexcept = default;
    Kernel(const Kernel &) = delete;
    Kernel &operator=(const Kernel &) = delete;
    Kernel(Kernel &&other) noexcept : owned_(std::move(other.owned_)), k_(std::exchange(other.k_, nullptr)) {}
    Kernel &operator=(Kernel &&other) noexcept {
        owned_ = std::move(other.owned_);
        k_ = std::exchange(other.k_, nullptr);
        return *this;
    }
    ~Kernel() = default;

    /// Bytes of memory a configuration needs.
    static detail::ret<std::size_t> mem_size(const KernelConfig &config) {
        valori_kernel_config c = config.c();
        std::size_t n = 0;
        int rc = valori_kernel_mem_size(&c, &n);
        return detail::finish(rc == VALORI_OK ? Result<std::size_t>(n) : Result<std::size_t>(detail::error_of(rc, nullptr)));
    }

    /// A kernel in memory this object allocates and owns.
    static detail::ret<Kernel> create(const KernelConfig &config) {
        valori_kernel_config c = config.c();
        std::size_t n = 0;
        int rc = valori_kernel_mem_size(&c, &n);
        if (rc != VALORI_OK) return detail::finish(Result<Kernel>(detail::error_of(rc, nullptr)));
        Kernel k;
        k.owned_.resize((n + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t));
        rc = valori_kernel_init(&c, k.owned_.data(), k.owned_.size() * sizeof(std::uint64_t), &k.k_);
        if (rc != VALORI_OK) return detail::finish(Result<Kernel>(detail::error_of(rc, nullptr)));
        return detail::finish(Result<Kernel>(std::move(k)));
    }

    /// A kernel inside caller memory (`len` bytes at `mem`, any alignment).
    static detail::ret<Kernel> in(const KernelConfig &config, void *mem, std::size_t len) {
        valori_kernel_config c = config.c();
        Kernel k;
        int rc = valori_kernel_init(&c, mem, len, &k.k_);
        if (rc != VALORI_OK) return detail::finish(Result<Kernel>(detail::error_of(rc, nullptr)));
        return detail::finish(Result<Kernel>(std::move(k)));
    }

    /// A kernel rebuilt from snapshot() bytes, in memory this object owns.
    static detail::ret<Kernel> restore(const KernelConfig &config, span<const std::uint8_t> snapshot) {
        valori_kernel_config c = config.c();
        std::size_t n = 0;
        int rc = valori_kernel_mem_size(&c, &n);
        if (rc != VALORI_OK) return detail::finish(Result<Kernel>(detail::error_of(rc, nullptr)));
        Kernel k;
        k.owned_.resize((n + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t));
        rc = valori_kernel_restore(&c, snapshot.data(), snapshot.size(), k.owned_.data(),
                                   k.owned_.size() * sizeof(std::uint64_t), &k.k_);
        if (rc != VALORI_OK) return detail::finish(Result<Kernel>(detail::error_of(rc, nullptr)));
        return detail::finish(Result<Kernel>(std::move(k)));
    }

    valori_kernel *c_handle() const noexcept { return k_; }

    detail::ret<std::uint64_t> insert(span<const float> vector, std::optional<std::uint64_t> tag = std::nullopt,
                                      span<const std::uint8_t> meta = {}) {
        std::uint64_t id = 0;
        int rc = valori_kernel_insert(k_, vector.data(), vector.size(), tag ? &*tag : nullptr, meta.data(),
                                      meta.size(), &id);
        return detail::finish(value(rc, id));
    }
    /// Applies one encoded command (from a database export / WAL).
    detail::ret<void> apply(span<const std::uint8_t> command) {
        return detail::finish(status(valori_kernel_apply(k_, command.data(), command.size())));
    }
    detail::ret<void> erase(std::uint64_t id) { return detail::finish(status(valori_kernel_delete(k_, id))); }
    detail::ret<void> set_meta(std::uint64_t id, span<const std::uint8_t> meta) {
        return detail::finish(status(valori_kernel_set_meta(k_, id, meta.data(), meta.size())));
    }
    detail::ret<void> set_tag(std::uint64_t id, std::optional<std::uint64_t> tag) {
        return detail::finish(status(valori_kernel_set_tag(k_, id, tag ? &*tag : nullptr)));
    }
    detail::ret<std::uint64_t> create_node(std::uint32_t kind, std::optional<std::uint64_t> record = std::nullopt,
                                           span<const std::uint8_t> label = {}) {
        std::uint64_t id = 0;
        int rc = valori_kernel_create_node(k_, kind, record ? &*record : nullptr, label.data(), label.size(), &id);
        return detail::finish(value(rc, id));
    }
    detail::ret<void> delete_node(std::uint64_t id) { return detail::finish(status(valori_kernel_delete_node(k_, id))); }
    detail::ret<std::uint64_t> create_edge(std::uint32_t kind, std::uint64_t from, std::uint64_t to,
                                           std::optional<float> weight = std::nullopt) {
        std::uint64_t id = 0;
        int rc = valori_kernel_create_edge(k_, kind, from, to, weight ? &*weight : nullptr, &id);
        return detail::finish(value(rc, id));
    }
    detail::ret<void> delete_edge(std::uint64_t id) { return detail::finish(status(valori_kernel_delete_edge(k_, id))); }

    /// Exact k nearest records (float query).
    detail::ret<std::vector<Hit>> search(span<const float> query, std::uint32_t k,
                                         std::optional<std::uint64_t> tag = std::nullopt) {
        const std::uint64_t *t = tag ? &*tag : nullptr;
        return detail::finish(fill<Hit>(guess(k), [&](Hit *out, std::size_t cap, std::size_t *n) {
            return valori_kernel_search(k_, query.data(), query.size(), k, t, out, cap, n);
        }));
    }
    /// Exact k nearest records (raw Q16.16 query; const: may run concurrently).
    detail::ret<std::vector<Hit>> search_raw(span<const std::int32_t> query, std::uint32_t k,
                                             std::optional<std::uint64_t> tag = std::nullopt) const {
        const std::uint64_t *t = tag ? &*tag : nullptr;
        return detail::finish(fill<Hit>(guess(k), [&](Hit *out, std::size_t cap, std::size_t *n) {
            return valori_kernel_search_raw(k_, query.data(), query.size(), k, t, out, cap, n);
        }));
    }
    detail::ret<std::vector<Edge>> neighbors(std::uint64_t node, Direction direction) const {
        return detail::finish(fill<Edge>(8, [&](Edge *out, std::size_t cap, std::size_t *n) {
            return valori_kernel_neighbors(k_, node, static_cast<std::uint32_t>(direction), out, cap, n);
        }));
    }
    detail::ret<std::vector<Hop>> traverse(std::uint64_t start, std::uint32_t hops, Direction direction,
                                           std::optional<std::uint32_t> kind = std::nullopt) const {
        const std::uint32_t *kk = kind ? &*kind : nullptr;
        return detail::finish(detail::traverse(
            [&](Hop *out, std::size_t cap, std::size_t *n) {
                return valori_kernel_traverse(k_, start, hops, static_cast<std::uint32_t>(direction), kk, out, cap, n);
            },
            [](int rc) { return detail::error_of(rc, nullptr); }));
    }
    detail::ret<std::uint64_t> count() const {
        std::uint64_t n = 0;
        int rc = valori_kernel_count(k_, &n);
        return detail::finish(value(rc, n));
    }
    detail::ret<std::vector<float>> get_vector(std::uint64_t id) const {
        return detail::finish(fill<float>(16, [&](float *out, std::size_t cap, std::size_t *n) {
            return valori_kernel_get_vector(k_, id, out, cap, n);
        }));
    }
    detail::ret<std::vector<std::uint8_t>> get_meta(std::uint64_t id) const {
        return detail::finish(fill<std::uint8_t>(64, [&](std::uint8_t *out, std::size_t cap, std::size_t *n) {
            return valori_kernel_get_meta(k_, id, out, cap, n);
        }));
    }
    detail::ret<std::optional<std::uint64_t>> get_tag(std::uint64_t id) const {
        std::uint64_t tag = 0;
        int has = 0;
        int rc = valori_kernel_get_tag(k_, id, &tag, &has);
        return detail::finish(value(rc, has ? std::optional<std::uint64_t>(tag) : std::nullopt));
    }
    detail::ret<StateHash> state_hash() const {
        StateHash h{};
        int rc = valori_kernel_state_hash(k_, h.data());
        return detail::finish(value(rc, h));
    }
    /// The canonical state encoding (restore with Kernel::restore).
    detail::ret<std::vector<std::uint8_t>> snapshot() const {
        return detail::finish(fill<std::uint8_t>(0, [&](std::uint8_t *out, std::size_t cap, std::size_t *n) {
            return valori_kernel_snapshot(k_, out, cap, n);
        }));
    }

  private:
    std::size_t guess(std::uint32_t k) const {
        std::uint64_t n = 0;
        valori_kernel_count(k_, &n);
        return static_cast<std::size_t>(n < k ? n : k);
    }
    static Result<void> status(int rc) {
        return rc == VALORI_OK ? Result<void>() : Result<void>(detail::error_of(rc, nullptr));
    }
    template <class T>
    static Result<T> value(int rc, T v) {
        return rc == VALORI_OK ? Result<T>(std::move(v)) : Result<T>(detail::error_of(rc, nullptr));
    }
    template <class T, class F>
    static Result<std::vector<T>> fill(std::size_t guess, F &&call) {
        return detail::fill<T>(guess, std::forward<F>(call), [](int rc) { return detail::error_of(rc, nullptr); });
    }

    std::vector<std::uint64_t> owned_;
    valori_kernel *k_ = nullptr;
};

}  // namespace valori

#endif  // VALORI_HPP
