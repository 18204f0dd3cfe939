// Search, top-k selection and encoders, at every SIMD level this machine runs.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "map_test_util.hpp"
#include "vpr/kernels.hpp"
#include "vpr/matcher.hpp"
#include "vpr/simd.hpp"

namespace {

// Before the first search: small maps here must still run on several threads (the core
// keeps scans under 4 MB per thread on one thread, docs/matching_speed.md).
const bool kThreadsOnSmallMaps = [] {
  setenv("VPR_SCAN_MIN_BYTES_PER_THREAD", "0", 0);
  return true;
}();

using vpr_test::unit_rows;

// Brute-force reference: sort every (score, id) pair.
std::vector<std::int64_t> reference_top(const std::vector<float>& db, const float* q, std::size_t n,
                                        std::size_t d, std::size_t k) {
  std::vector<std::pair<float, std::int64_t>> all(n);
  for (std::size_t i = 0; i < n; ++i) {
    float s = 0.0f;
    for (std::size_t j = 0; j < d; ++j) s += q[j] * db[i * d + j];
    all[i] = {s, static_cast<std::int64_t>(i)};
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < std::min(k, n); ++i) ids.push_back(all[i].second);
  return ids;
}

struct LevelGuard {
  explicit LevelGuard(vpr::SimdLevel level) { vpr::force_simd_level(level); }
  ~LevelGuard() { vpr::reset_simd_level(); }
};

}  // namespace

TEST_CASE("float32 search equals brute force at every level and thread count") {
  const std::size_t n = 5000, d = 96, nq = 7;
  const auto db = unit_rows(n, d, 1);
  const auto q = unit_rows(nq, d, 2);
  const auto database = vpr::Database::encode(db.data(), n, d, vpr::Storage::Float32);
  for (vpr::SimdLevel level : vpr::supported_simd_levels()) {
    LevelGuard guard(level);
    for (int threads : {1, 2, 3}) {
      CAPTURE(vpr::simd_level_name(level));
      CAPTURE(threads);
      vpr::SearchOptions opt;
      opt.k = 10;
      opt.num_threads = threads;
      const auto r = vpr::search(database.view(), q.data(), nq, d, opt);
      REQUIRE(r.ids.size() == nq * 10);
      for (std::size_t j = 0; j < nq; ++j) {
        const auto ref = reference_top(db, q.data() + j * d, n, d, 10);
        for (std::size_t i = 0; i < 10; ++i) CHECK(r.ids[j * 10 + i] == ref[i]);
        for (std::size_t i = 1; i < 10; ++i)
          CHECK(r.scores[j * 10 + i - 1] >= r.scores[j * 10 + i]);
      }
    }
  }
}

TEST_CASE("int8 query batches give every level the scalar level's results, block by block") {
  // d = 96 (not a multiple of the AMX tile's 64 bytes), 1365-row blocks (not a multiple of
  // 16), 37 queries (an odd number of 16-query groups): the packed-query path of the amx
  // level sees every edge, and the others are checked the same way.
  const std::size_t n = 5000, d = 96, nq = 37;
  const auto db = unit_rows(n, d, 4);
  const auto q = unit_rows(nq, d, 5);
  const auto database = vpr::Database::encode(db.data(), n, d, vpr::Storage::Int8);
  vpr::SearchOptions opt;
  opt.k = 10;
  vpr::SearchResults want;
  {
    LevelGuard guard(vpr::SimdLevel::Scalar);
    want = vpr::search(database.view(), q.data(), nq, d, opt);
  }
  for (vpr::SimdLevel level : vpr::supported_simd_levels()) {
    LevelGuard guard(level);
    for (int threads : {1, 2, 3}) {
      CAPTURE(vpr::simd_level_name(level));
      CAPTURE(threads);
      opt.num_threads = threads;
      const auto got = vpr::search(database.view(), q.data(), nq, d, opt);
      CHECK(got.ids == want.ids);
      CHECK(got.scores == want.scores);
    }
  }
}

TEST_CASE("ties are broken by the lower index, across threads and chunks") {
  // Small: two distinct rows, repeated (one chunk per thread).
  const std::size_t n = 9000, d = 8;
  std::vector<float> db(n * d, 0.0f);
  for (std::size_t i = 0; i < n; ++i) db[i * d + (i % 2)] = 1.0f;
  const std::vector<float> q = {1, 0, 0, 0, 0, 0, 0, 0};
  // Large: 150k rows of 64 dimensions, each one of 7 directions, so the top-k is all ties
  // and any chunk out of order would show (19-33 chunks of float32 rows at 2-4 threads, 5
  // of binary; run_chunks, csrc/src/scan.cpp).
  const std::size_t big_n = 150000, big_d = 64;
  const std::vector<float> directions = unit_rows(7, big_d, 11);
  std::vector<float> big(big_n * big_d);
  for (std::size_t i = 0; i < big_n; ++i) {
    std::copy(directions.begin() + static_cast<std::ptrdiff_t>((i % 7) * big_d),
              directions.begin() + static_cast<std::ptrdiff_t>((i % 7 + 1) * big_d),
              big.begin() + static_cast<std::ptrdiff_t>(i * big_d));
  }
  const std::vector<float> big_q(directions.begin() + 3 * big_d, directions.begin() + 4 * big_d);
  for (auto storage :
       {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
    CAPTURE(vpr::storage_name(storage));
    const auto database = vpr::Database::encode(db.data(), n, d, storage);
    vpr::SearchOptions opt;
    opt.k = 5;
    opt.num_threads = 4;
    const auto r = vpr::search(database.view(), q.data(), 1, d, opt);
    CHECK(r.ids == std::vector<std::int64_t>{0, 2, 4, 6, 8});

    const auto big_db = vpr::Database::encode(big.data(), big_n, big_d, storage);
    vpr::SearchOptions big_opt;
    big_opt.k = 20;
    big_opt.num_threads = 1;
    const auto one = vpr::search(big_db.view(), big_q.data(), 1, big_d, big_opt);
    REQUIRE(one.ids.size() == 20);
    CHECK(one.ids[0] == 3);
    CHECK(one.ids[1] == 10);
    for (int threads : {2, 3, 4}) {
      big_opt.num_threads = threads;
      const auto many = vpr::search(big_db.view(), big_q.data(), 1, big_d, big_opt);
      CAPTURE(threads);
      CHECK(many.ids == one.ids);
      CHECK(many.scores == one.scores);
    }
  }
}

TEST_CASE("k larger than the database returns all of it, sorted") {
  const std::size_t n = 4, d = 16;
  const auto db = unit_rows(n, d, 3);
  const auto database = vpr::Database::encode(db.data(), n, d, vpr::Storage::Float32);
  vpr::SearchOptions opt;
  opt.k = 100;
  const auto r = vpr::search(database.view(), db.data() + 2 * d, 1, d, opt);
  REQUIRE(r.k == n);
  CHECK(r.ids[0] == 2);
  std::vector<std::int64_t> sorted_ids = r.ids;
  std::sort(sorted_ids.begin(), sorted_ids.end());
  CHECK(sorted_ids == std::vector<std::int64_t>{0, 1, 2, 3});
}

TEST_CASE("bad arguments throw std::invalid_argument") {
  const std::size_t n = 10, d = 8;
  const auto db = unit_rows(n, d, 4);
  const auto database = vpr::Database::encode(db.data(), n, d, vpr::Storage::Float32);
  vpr::SearchOptions opt;
  CHECK_THROWS_AS(vpr::search(database.view(), db.data(), 1, d + 1, opt), std::invalid_argument);
  opt.k = 0;
  CHECK_THROWS_AS(vpr::search(database.view(), db.data(), 1, d, opt), std::invalid_argument);
  opt.k = 3;
  vpr::DatabaseView empty;
  CHECK_THROWS_AS(vpr::search(empty, db.data(), 1, d, opt), std::invalid_argument);
  std::vector<float> nan_query(d, 0.0f);
  nan_query[3] = std::nanf("");
  CHECK_THROWS_AS(vpr::search(database.view(), nan_query.data(), 1, d, opt), std::invalid_argument);
  CHECK_THROWS_AS(vpr::Database::encode(nan_query.data(), 1, d, vpr::Storage::Int8),
                  std::invalid_argument);
  opt.num_threads = -1;
  CHECK_THROWS_AS(vpr::search(database.view(), db.data(), 1, d, opt), std::invalid_argument);
}

TEST_CASE("compressed storages find the float32 neighbours") {
  const std::size_t n = 3000, d = 256, nq = 20;
  const auto db = unit_rows(n, d, 5);
  auto q = db;  // queries: slightly perturbed database rows
  std::mt19937 rng(6);
  std::normal_distribution<float> noise(0.0f, 0.02f);
  q.resize(nq * d);
  for (float& v : q) v += noise(rng);
  for (auto storage : {vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
    const auto database = vpr::Database::encode(db.data(), n, d, storage);
    vpr::SearchOptions opt;
    opt.k = 1;
    const auto r = vpr::search(database.view(), q.data(), nq, d, opt);
    CAPTURE(vpr::storage_name(storage));
    for (std::size_t j = 0; j < nq; ++j) CHECK(r.ids[j] == static_cast<std::int64_t>(j));
  }
}

TEST_CASE("two-stage search re-ranks the shortlist exactly") {
  const std::size_t n = 4000, d = 128, nq = 5;
  const auto db = unit_rows(n, d, 7);
  const auto q = unit_rows(nq, d, 8);
  const auto exact = vpr::Database::encode(db.data(), n, d, vpr::Storage::Float32);
  const auto coarse = vpr::Database::encode(db.data(), n, d, vpr::Storage::Binary);
  const auto exact_view = exact.view();
  vpr::SearchOptions opt;
  opt.k = 5;
  opt.shortlist = n;  // a shortlist of everything must give the exact answer
  opt.rerank = &exact_view;
  const auto r = vpr::search(coarse.view(), q.data(), nq, d, opt);
  for (std::size_t j = 0; j < nq; ++j) {
    const auto ref = reference_top(db, q.data() + j * d, n, d, 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK(r.ids[j * 5 + i] == ref[i]);
  }
}

TEST_CASE("projection maps raw queries into the database space") {
  const std::size_t n = 500, d_in = 32, d_out = 16;
  const auto raw = unit_rows(n, d_in, 9);
  std::vector<float> matrix(d_in * d_out, 0.0f);
  for (std::size_t i = 0; i < d_out; ++i) matrix[i * d_out + i] = 1.0f;  // keep first 16 dims
  std::vector<float> projected(n * d_out);
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0.0;
    for (std::size_t j = 0; j < d_out; ++j) norm += raw[i * d_in + j] * raw[i * d_in + j];
    for (std::size_t j = 0; j < d_out; ++j) {
      projected[i * d_out + j] = raw[i * d_in + j] / static_cast<float>(std::sqrt(norm));
    }
  }
  const auto database = vpr::Database::encode(projected.data(), n, d_out, vpr::Storage::Float32);
  vpr::SearchOptions opt;
  opt.k = 1;
  opt.projection = {matrix.data(), nullptr, d_in, d_out};
  const auto r = vpr::search(database.view(), raw.data() + 42 * d_in, 1, d_in, opt);
  CHECK(r.ids[0] == 42);
  CHECK(r.scores[0] == doctest::Approx(1.0f).epsilon(1e-5));
}

TEST_CASE("half conversion round-trips and rounds to nearest even") {
  for (float v : {0.0f, 1.0f, -2.5f, 0.333251953125f, 65504.0f, 6.103515625e-05f}) {
    CHECK(vpr::half_to_float(vpr::float_to_half(v)) == v);
  }
  CHECK(vpr::float_to_half(1.0f + 1.0f / 2048.0f) == vpr::float_to_half(1.0f));  // tie -> even
  CHECK(std::isinf(vpr::half_to_float(vpr::float_to_half(1e6f))));
}

TEST_CASE("int8 quantisation is symmetric per row") {
  const std::vector<float> x = {0.5f, -1.0f, 0.25f, 0.0f};
  std::vector<std::int8_t> codes(4);
  float scale = 0.0f;
  vpr::quantize_int8(x.data(), 1, 4, codes.data(), &scale);
  CHECK(scale == doctest::Approx(1.0f / 127.0f));
  CHECK(codes == std::vector<std::int8_t>{64, -127, 32, 0});
  // Subnormal rows: 1 / scale overflows in float; the codes still span -127..127.
  const std::vector<float> tiny = {1e-43f, -1e-43f, 0.0f, 5e-44f};
  vpr::quantize_int8(tiny.data(), 1, 4, codes.data(), &scale);
  CHECK(codes[0] == 127);
  CHECK(codes[1] == -127);
  CHECK(codes[2] == 0);
  CHECK(std::abs(codes[3] - 64) <= 1);
}

TEST_CASE("query batches give the same results as single queries, every storage") {
  const std::size_t n = 6000, d = 64, nq = 9;
  const auto db = unit_rows(n, d, 10);
  const auto q = unit_rows(nq, d, 11);
  for (auto storage :
       {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
    const auto database = vpr::Database::encode(db.data(), n, d, storage);
    vpr::SearchOptions opt;
    opt.k = 7;
    opt.num_threads = 2;
    const auto batch = vpr::search(database.view(), q.data(), nq, d, opt);
    for (std::size_t j = 0; j < nq; ++j) {
      const auto single = vpr::search(database.view(), q.data() + j * d, 1, d, opt);
      CAPTURE(vpr::storage_name(storage));
      CAPTURE(j);
      for (std::size_t i = 0; i < opt.k; ++i) {
        CHECK(single.ids[i] == batch.ids[j * opt.k + i]);
        CHECK(single.scores[i] == doctest::Approx(batch.scores[j * opt.k + i]).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("a forked child searches on threads: the pool is rebuilt, not inherited") {
  // The parent's persistent workers do not exist in a child; before the fix the child's
  // first multi-threaded search waited for them forever. alarm() turns a hang into a
  // failure instead of a stuck test.
  const std::size_t n = 8192, d = 32;
  const std::vector<float> db = unit_rows(n, d, 5);
  vpr::DatabaseView view{vpr::Storage::Float32, n, d, db.data(), nullptr};
  vpr::SearchOptions options;
  options.k = 3;
  options.num_threads = 2;
  const float* q = db.data() + 4321 * d;
  REQUIRE(vpr::search(view, q, 1, d, options).ids[0] == 4321);  // the pool now has a worker
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(20);
    const auto r = vpr::search(view, q, 1, d, options);
    _exit(r.ids[0] == 4321 ? 0 : 3);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
