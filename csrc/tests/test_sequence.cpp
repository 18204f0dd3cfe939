// Sequence matcher: full scoring equals search, contrast normalisation, and a
// synthetic route where single frames are ambiguous but sequences are not.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "map_test_util.hpp"
#include "vpr/matcher.hpp"
#include "vpr/sequence.hpp"
#include "vpr/simd.hpp"

TEST_CASE("sequence score_all gives the scores search ranks, at every SIMD level") {
  const std::size_t n = 700, d = 48;
  const auto rows = vpr_test::unit_rows(n, d, 11);
  const auto q = vpr_test::unit_rows(1, d, 12);
  for (auto level : vpr::supported_simd_levels()) {
    vpr::force_simd_level(level);
    for (auto storage :
         {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
      const auto db = vpr::Database::encode(rows.data(), n, d, storage);
      std::vector<float> all(n);
      vpr::score_all(db.view(), q.data(), d, {}, all.data(), 2);
      vpr::SearchOptions opt;
      opt.k = 10;
      const auto r = vpr::search(db.view(), q.data(), 1, d, opt);
      for (std::size_t i = 0; i < 10; ++i) {
        CHECK(all[static_cast<std::size_t>(r.ids[i])] ==
              doctest::Approx(r.scores[i]).epsilon(1e-5));
      }
    }
  }
  vpr::reset_simd_level();
}

TEST_CASE("sequence contrast normalisation: zero mean, unit std inside a window") {
  std::vector<float> s = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::vector<float> z(s.size());
  vpr::contrast_normalise(s.data(), s.size(), 10, z.data());
  double sum = 0.0, sq = 0.0;
  for (float v : z) {
    sum += v;
    sq += static_cast<double>(v) * v;
  }
  CHECK(sum == doctest::Approx(0.0).epsilon(1e-6));
  CHECK(sq / 10.0 == doctest::Approx(1.0));
  std::vector<float> flat(5, 0.3f), out(5, 1.0f);
  vpr::contrast_normalise(flat.data(), 5, 3, out.data());
  for (float v : out) CHECK(v == 0.0f);
}

TEST_CASE("sequence matching recovers a route that single frames confuse") {
  // Places whose descriptors are weak (heavy noise); queries traverse them at
  // velocity 1. Single-frame matching often fails; L=10 sequences should not.
  const std::size_t n = 400, d = 32, nq = 120;
  const auto base = vpr_test::unit_rows(n, d, 21);
  std::mt19937 rng(22);
  std::normal_distribution<float> noise(0.0f, 0.25f);
  std::vector<float> queries(nq * d);
  const std::size_t start = 100;
  for (std::size_t j = 0; j < nq; ++j) {
    double norm = 0.0;
    for (std::size_t c = 0; c < d; ++c) {
      const float v = base[(start + j) * d + c] + noise(rng);
      queries[j * d + c] = v;
      norm += static_cast<double>(v) * v;
    }
    for (std::size_t c = 0; c < d; ++c) queries[j * d + c] /= static_cast<float>(std::sqrt(norm));
  }
  const auto db = vpr::Database::encode(base.data(), n, d, vpr::Storage::Float32);
  vpr::SequenceOptions opt;
  opt.k = 1;
  const auto seq = vpr::sequence_search(db.view(), queries.data(), nq, d, opt);
  vpr::SearchOptions sopt;
  sopt.k = 1;
  const auto single = vpr::search(db.view(), queries.data(), nq, d, sopt);
  std::size_t seq_ok = 0, single_ok = 0;
  for (std::size_t j = opt.length; j < nq; ++j) {
    const auto truth = static_cast<std::int64_t>(start + j);
    seq_ok += std::llabs(seq.ids[j] - truth) <= 1;
    single_ok += std::llabs(single.ids[j] - truth) <= 1;
  }
  const std::size_t total = nq - opt.length;
  MESSAGE("sequence hits " << seq_ok << ", single-frame hits " << single_ok << " of " << total);
  CHECK(seq_ok >= total * 95 / 100);
  // Sequences must beat single frames by a clear margin (a tie proves nothing).
  CHECK(seq_ok >= single_ok + total / 5);

  // Online pushes equal the batch; reset starts a new sequence.
  vpr::SequenceMatcher m(db.view(), opt);
  for (std::size_t j = 0; j < 30; ++j) {
    const auto r = m.push(queries.data() + j * d, d);
    CHECK(r.ids[0] == seq.ids[j]);
    CHECK(r.scores[0] == seq.scores[j]);
  }
  CHECK(m.scorer().frames() == opt.length);
  m.reset();
  CHECK(m.scorer().frames() == 0);
  CHECK(m.push(queries.data(), d).ids[0] == seq.ids[0]);
}

TEST_CASE("sequence scores follow the velocity and ignore lines before place 0") {
  // Score matrix with a perfect line of velocity 2 ending at place 40.
  const std::size_t n = 60, nq = 5;
  std::vector<float> scores(nq * n, 0.0f);
  for (std::size_t j = 0; j < nq; ++j) scores[j * n + 32 + 2 * j] = 1.0f;
  vpr::SequenceOptions opt;
  opt.length = 5;
  opt.v_min = 1.0f;
  opt.v_max = 2.0f;
  opt.v_steps = 3;
  opt.k = 3;
  const auto r = vpr::sequence_search_scores(scores.data(), nq, n, opt);
  CHECK(r.num_queries == nq);
  CHECK(r.ids[(nq - 1) * 3] == 40);
  opt.v_max = 1.0f;
  opt.v_steps = 1;
  const auto slow = vpr::sequence_search_scores(scores.data(), nq, n, opt);
  CHECK(slow.scores[(nq - 1) * 3] < r.scores[(nq - 1) * 3]);
}

TEST_CASE("sequence options are validated") {
  vpr::SequenceOptions opt;
  opt.length = 0;
  CHECK_THROWS_AS(opt.validate(), std::invalid_argument);
  opt = {};
  opt.v_min = 2.0f;
  opt.v_max = 1.0f;
  CHECK_THROWS_AS(opt.validate(), std::invalid_argument);
  opt = {};
  opt.contrast_window = 1;
  CHECK_THROWS_AS(opt.validate(), std::invalid_argument);
  opt = {};
  CHECK_THROWS_AS(vpr::SequenceScorer(0, opt), std::invalid_argument);
  vpr::SequenceScorer s(4, opt);
  std::vector<float> bad = {0.0f, NAN, 1.0f, 2.0f};
  CHECK_THROWS_AS(s.push_scores(bad.data()), std::invalid_argument);
}

TEST_CASE("sequence scoring runs on the worker pool: same scores at 1 and 2 threads, also forked") {
  const std::size_t n = 20000, d = 16;
  const auto rows = vpr_test::unit_rows(n, d, 31);
  for (auto storage :
       {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
    const auto db = vpr::Database::encode(rows.data(), n, d, storage);
    std::vector<float> one(n), two(n);
    vpr::score_all(db.view(), rows.data() + 7 * d, d, {}, one.data(), 1);
    vpr::score_all(db.view(), rows.data() + 7 * d, d, {}, two.data(), 2);
    CHECK(one == two);
    const pid_t pid = fork();  // the child rebuilds the pool instead of waiting on it
    REQUIRE(pid >= 0);
    if (pid == 0) {
      alarm(20);
      std::vector<float> child(n);
      vpr::score_all(db.view(), rows.data() + 7 * d, d, {}, child.data(), 2);
      _exit(child == one ? 0 : 3);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }
}

TEST_CASE("sequence position window: only places inside lead; a full window changes nothing") {
  const std::size_t n = 500, d = 32;
  const auto rows = vpr_test::unit_rows(n, d, 21);
  const auto db = vpr::Database::encode(rows.data(), n, d, vpr::Storage::Int8);
  vpr::SequenceOptions opt;
  opt.length = 4;
  opt.k = 5;
  std::vector<std::uint32_t> everything(n);
  for (std::uint32_t i = 0; i < n; ++i) everything[i] = i;
  vpr::SequenceMatcher windowed(db.view(), opt), plain(db.view(), opt), all(db.view(), opt);
  for (std::size_t f = 0; f < 6; ++f) {
    // Queries near place 100 + f (one place per frame, as the matcher's velocities
    // expect); a window that moves with them, plus a run at the end of the map.
    std::vector<float> q(rows.begin() + (100 + f) * d, rows.begin() + (101 + f) * d);
    for (auto& v : q) v += 0.01f;
    std::vector<std::uint32_t> window;
    for (std::uint32_t i = 90 + f; i <= 110 + f; ++i) window.push_back(i);
    for (std::uint32_t i = 480; i < 490; ++i) window.push_back(i);
    const auto got = windowed.push(q.data(), d, window.data(), window.size());
    const auto full = all.push(q.data(), d, everything.data(), n);
    const auto want = plain.push(q.data(), d);
    CHECK(full.ids == want.ids);  // a window of every place is no prior
    CHECK(full.scores == want.scores);
    for (std::size_t i = 0; i < got.ids.size(); ++i) {
      const auto id = static_cast<std::uint32_t>(got.ids[i]);
      CHECK(std::find(window.begin(), window.end(), id) != window.end());
      CHECK(std::isfinite(got.scores[i]));
    }
    CHECK(got.ids[0] == static_cast<std::int64_t>(100 + f));
  }
  // A window of 2 places with k = 5: those 2, then places at -inf.
  std::vector<std::uint32_t> two = {7, 8};
  vpr::SequenceMatcher tiny(db.view(), opt);
  const auto r = tiny.push(rows.data(), d, two.data(), 2);
  CHECK((r.ids[0] == 7 || r.ids[0] == 8));
  CHECK(std::isfinite(r.scores[1]));
  CHECK(std::isinf(r.scores[2]));
  std::vector<std::uint32_t> unsorted = {3, 2};
  CHECK_THROWS_AS(windowed.push(rows.data(), d, unsorted.data(), 2), std::invalid_argument);
  std::vector<std::uint32_t> outside = {static_cast<std::uint32_t>(n)};
  CHECK_THROWS_AS(windowed.push(rows.data(), d, outside.data(), 1), std::invalid_argument);
}
