// The scan layer's worker pool (run_chunks) and searches whose rows span many chunks.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include "map_test_util.hpp"
#include "scan.hpp"
#include "vpr/matcher.hpp"

namespace {

const bool kThreadsOnSmallMaps = [] {
  setenv("VPR_SCAN_MIN_BYTES_PER_THREAD", "0", 0);
  return true;
}();

}  // namespace

TEST_CASE("run_chunks runs every chunk once, in increasing order within each slot") {
  for (std::size_t threads : {1u, 2u, 3u, 8u}) {
    for (std::size_t chunks : {0u, 1u, 2u, 7u, 500u}) {
      std::vector<std::atomic<int>> runs(chunks);
      std::vector<std::vector<std::size_t>> seen(threads);
      std::atomic<bool> bad_slot{false};
      vpr::detail::run_chunks(threads, chunks, [&](std::size_t slot, std::size_t c) {
        if (slot >= threads) {
          bad_slot = true;
          return;
        }
        ++runs[c];
        seen[slot].push_back(c);  // one slot is one thread at a time: no lock needed
      });
      CAPTURE(threads);
      CAPTURE(chunks);
      CHECK_FALSE(bad_slot.load());
      for (std::size_t c = 0; c < chunks; ++c) CHECK(runs[c].load() == 1);
      for (const auto& s : seen) {
        for (std::size_t i = 1; i < s.size(); ++i) CHECK(s[i - 1] < s[i]);
      }
    }
  }
}

TEST_CASE("run_chunks rethrows the first exception and the pool still works after it") {
  // A chunk takes 1 ms, so that the chunks after the failure (at about 2 ms) are still to
  // come when the exception is caught: they are skipped (100 ms of chunks if they were not).
  std::atomic<int> ran{0};
  const auto body = [&](std::size_t, std::size_t c) {
    ++ran;
    if (c == 3) throw std::runtime_error("chunk 3");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  CHECK_THROWS_AS(vpr::detail::run_chunks(2, 100, body), std::runtime_error);
  CHECK(ran.load() < 50);
  std::atomic<int> after{0};
  vpr::detail::run_chunks(2, 50, [&](std::size_t, std::size_t) { ++after; });
  CHECK(after.load() == 50);
}

TEST_CASE("searches over many chunks give the one-thread results, ties by the lower id") {
  // 150k rows of 64 dimensions: 19-33 chunks of float32 rows (2-4 threads), 5 of binary. Every row
  // is one of 7 directions, so the top-k is all ties and any chunk out of order would show.
  const std::size_t n = 150000, d = 64;
  const std::vector<float> directions = vpr_test::unit_rows(7, d, 11);
  std::vector<float> db(n * d);
  for (std::size_t i = 0; i < n; ++i) {
    std::copy(directions.begin() + static_cast<std::ptrdiff_t>((i % 7) * d),
              directions.begin() + static_cast<std::ptrdiff_t>((i % 7 + 1) * d),
              db.begin() + static_cast<std::ptrdiff_t>(i * d));
  }
  const std::vector<float> q(directions.begin() + 3 * d, directions.begin() + 4 * d);
  for (auto storage :
       {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
    const auto database = vpr::Database::encode(db.data(), n, d, storage);
    vpr::SearchOptions opt;
    opt.k = 20;
    opt.num_threads = 1;
    const auto one = vpr::search(database.view(), q.data(), 1, d, opt);
    CAPTURE(vpr::storage_name(storage));
    REQUIRE(one.ids.size() == 20);
    CHECK(one.ids[0] == 3);
    CHECK(one.ids[1] == 10);
    for (int threads : {2, 3, 4}) {
      opt.num_threads = threads;
      const auto many = vpr::search(database.view(), q.data(), 1, d, opt);
      CAPTURE(threads);
      CHECK(many.ids == one.ids);
      CHECK(many.scores == one.scores);
    }
  }
}
