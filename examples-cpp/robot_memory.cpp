// A robot's memory with valori.hpp: store observations, link them in the graph, query the
// nearest memories, print the state hash. The same operations as examples-c/quickstart.c and
// the Rust quickstart, so all three print the same hash.
//   robot_memory [DATA_DIR]   (default ./data/robot-memory-cpp)
#include <cstdio>
#include <string>
#include <vector>

#include "valori.hpp"

namespace {
struct Observation {
    std::string what;
    std::vector<float> embedding;
};

valori::span<const std::uint8_t> bytes(const std::string &s) {
    return {reinterpret_cast<const std::uint8_t *>(s.data()), s.size()};
}
}  // namespace

int main(int argc, char **argv) {
    const std::string dir = argc > 1 ? argv[1] : "data/robot-memory-cpp";
    const std::vector<Observation> seen = {
        {"red cup on table", {0.9f, 0.1f, 0.0f, 0.2f}},
        {"blue cup in sink", {0.8f, 0.2f, 0.1f, 0.9f}},
        {"door to kitchen", {0.0f, 0.9f, 0.8f, 0.1f}},
        {"charging dock", {-0.5f, 0.0f, 0.3f, -0.7f}},
    };
    try {
        valori::Options options;
        options.dim = 4;
        valori::Database memory = valori::Database::open(dir, options);
        if (memory.count() == 0) {
            std::vector<std::uint64_t> places;
            for (std::size_t i = 0; i < seen.size(); i++) {
                std::uint64_t id = memory.insert(seen[i].embedding, std::uint64_t(i % 2), bytes(seen[i].what));
                places.push_back(memory.create_node(1, id, bytes(seen[i].what)));
            }
            memory.create_edge(7, places[0], places[2], 1.0f);  // the cup is seen from the door
            memory.create_edge(7, places[2], places[1]);
        } else {
            std::printf("reopened %s (%llu memories)\n", dir.c_str(), (unsigned long long)memory.count());
        }
        const std::vector<float> now{0.85f, 0.15f, 0.05f, 0.5f};
        std::printf("nearest memories to what the camera sees now:\n");
        for (const valori::Hit &hit : memory.search(now, 3)) {
            std::vector<std::uint8_t> what = memory.get_meta(hit.id);
            std::printf("  id %2llu  d^2 = %.6f  %s\n", (unsigned long long)hit.id, hit.distance,
                        std::string(what.begin(), what.end()).c_str());
        }
        for (const valori::Hop &hop : memory.traverse(0, 2, valori::Direction::out)) {
            std::printf("  reachable from node 0: node %llu at depth %u\n", (unsigned long long)hop.node, hop.depth);
        }
        std::printf("state hash: %s\n", valori::to_hex(memory.state_hash()).c_str());
        memory.close();
    } catch (const valori::Error &e) {
        std::fprintf(stderr, "valori error %d: %s\n", e.raw_code(), e.what());
        return 1;
    }
    return 0;
}
