// The scan layer's worker pool (run_chunks); searches over many chunks: test_matcher.cpp.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "scan.hpp"

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
