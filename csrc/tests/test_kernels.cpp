// Every kernel of every SIMD level this CPU and build can run, against the
// scalar reference. Inputs are small integers, so float sums are exact in any
// summation order and all results must match bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "vpr/kernels.hpp"
#include "vpr/simd.hpp"

namespace {

const std::size_t kDims[] = {1,  3,  7,   8,   15,  16,  17,  31,   32,   33,   63,
                             64, 65, 127, 128, 129, 255, 256, 1000, 1024, 2048, 4096};
const std::size_t kRows[] = {0, 1, 2, 3, 5, 17, 100};
const std::size_t kQueries[] = {1, 2, 3, 4, 5, 7, 16, 100};

// Keeps the big cases affordable (qemu runs these too): the largest dimensions
// only with a few rows.
bool affordable(std::size_t n, std::size_t d) { return n * d <= 100 * 1024 || n <= 5; }

std::vector<float> random_floats(std::mt19937& rng, std::size_t count) {
  // |x| <= 8: dot products stay below 2^24 up to d = 4096, so float sums are exact.
  std::uniform_int_distribution<int> dist(-8, 8);
  std::vector<float> v(count);
  for (auto& x : v) x = static_cast<float>(dist(rng));
  return v;
}

std::vector<std::int8_t> random_i8(std::mt19937& rng, std::size_t count) {
  std::uniform_int_distribution<int> dist(-127, 127);
  std::vector<std::int8_t> v(count);
  for (auto& x : v) x = static_cast<std::int8_t>(dist(rng));
  return v;
}

std::vector<std::uint8_t> random_u8(std::mt19937& rng, std::size_t count) {
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<std::uint8_t> v(count);
  for (auto& x : v) x = static_cast<std::uint8_t>(dist(rng));
  return v;
}

// Levels other than Scalar (each compared with Scalar), printed once so test
// logs show what was covered, e.g. under qemu with different -cpu models.
std::vector<vpr::SimdLevel> simd_levels() {
  static bool printed = false;
  const std::vector<vpr::SimdLevel> all = vpr::supported_simd_levels();
  if (!printed) {
    std::string names;
    for (vpr::SimdLevel level : all) names += " " + vpr::simd_level_name(level);
    std::printf("[vpr_core_tests] SIMD levels covered:%s (detected: %s)\n", names.c_str(),
                vpr::simd_level_name(vpr::detect_simd_level()).c_str());
    std::fflush(stdout);
    printed = true;
  }
  std::vector<vpr::SimdLevel> levels;
  for (vpr::SimdLevel level : all) {
    if (level != vpr::SimdLevel::Scalar) levels.push_back(level);
  }
  return levels;
}

const vpr::KernelTable& reference() { return vpr::scalar_kernels(); }

// Every (level, row order) table other than Scalar's: both orders of every level.
struct Variant {
  vpr::SimdLevel level;
  vpr::RowOrder order;
};

std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (vpr::SimdLevel level : simd_levels()) {
    for (vpr::RowOrder order : {vpr::RowOrder::Sequential, vpr::RowOrder::SequentialPrefetch,
                                vpr::RowOrder::Interleaved, vpr::RowOrder::SequentialSplitLoads}) {
      out.push_back({level, order});
    }
  }
  return out;
}

}  // namespace

TEST_CASE("kernel levels are consistent") {
  const std::vector<vpr::SimdLevel> all = vpr::supported_simd_levels();
  REQUIRE(!all.empty());
  CHECK(all.front() == vpr::SimdLevel::Scalar);
  CHECK(vpr::kernels_for(vpr::SimdLevel::Scalar) == &vpr::scalar_kernels());
  for (vpr::SimdLevel level : all) {
    for (vpr::RowOrder order : {vpr::RowOrder::Sequential, vpr::RowOrder::SequentialPrefetch,
                                vpr::RowOrder::Interleaved, vpr::RowOrder::SequentialSplitLoads}) {
      CHECK(vpr::kernels_for(level, order) != nullptr);
    }
    const vpr::KernelTable* k = vpr::kernels_for(level);
    REQUIRE(k != nullptr);
    CHECK((k->dot_f32 != nullptr));
    CHECK((k->dot_f16 != nullptr));
    CHECK((k->dot_i8 != nullptr));
    CHECK((k->hamming != nullptr));
    CHECK((k->dot_f32_batch != nullptr));
    CHECK((k->dot_i8_batch != nullptr));
  }
  MESSAGE("levels: " << all.size());
}

TEST_CASE("dot_f32, dot_f16, dot_i8 and hamming match the scalar reference") {
  std::mt19937 rng(42);
  for (const Variant& v : variants()) {
    const vpr::SimdLevel level = v.level;
    const vpr::KernelTable& k = *vpr::kernels_for(level, v.order);
    for (std::size_t d : kDims) {
      for (std::size_t n : kRows) {
        if (!affordable(n, d)) continue;
        CAPTURE(vpr::simd_level_name(level));
        CAPTURE(vpr::row_order_name(v.order));
        CAPTURE(d);
        CAPTURE(n);
        // Sentinels after the outputs catch writes past row n.
        const std::size_t guard = 3;

        const std::vector<float> qf = random_floats(rng, d);
        const std::vector<float> dbf = random_floats(rng, n * d);
        std::vector<float> want(n + guard, -1.0f), got(n + guard, -1.0f);
        reference().dot_f32(qf.data(), dbf.data(), n, d, want.data());
        k.dot_f32(qf.data(), dbf.data(), n, d, got.data());
        CHECK(got == want);

        std::vector<std::uint16_t> dbh(n * d);
        for (std::size_t t = 0; t < dbh.size(); ++t) dbh[t] = vpr::float_to_half(dbf[t]);
        std::fill(want.begin(), want.end(), -1.0f);
        std::fill(got.begin(), got.end(), -1.0f);
        reference().dot_f16(qf.data(), dbh.data(), n, d, want.data());
        k.dot_f16(qf.data(), dbh.data(), n, d, got.data());
        CHECK(got == want);

        const std::vector<std::int8_t> qi = random_i8(rng, d);
        const std::vector<std::int8_t> dbi = random_i8(rng, n * d);
        std::vector<std::int32_t> want_i(n + guard, -1), got_i(n + guard, -1);
        reference().dot_i8(qi.data(), dbi.data(), n, d, want_i.data());
        k.dot_i8(qi.data(), dbi.data(), n, d, got_i.data());
        CHECK(got_i == want_i);

        // Hamming over d bytes (d * 8 bits), so odd byte tails are covered too.
        const std::vector<std::uint8_t> qb = random_u8(rng, d);
        const std::vector<std::uint8_t> dbb = random_u8(rng, n * d);
        std::vector<std::uint32_t> want_h(n + guard, 7), got_h(n + guard, 7);
        reference().hamming(qb.data(), dbb.data(), n, d, want_h.data());
        k.hamming(qb.data(), dbb.data(), n, d, got_h.data());
        CHECK(got_h == want_h);
      }
    }
  }
}

TEST_CASE("scalar reference is correct on known values") {
  const vpr::KernelTable& k = reference();
  const float q[3] = {1.0f, 2.0f, 3.0f};
  const float db[6] = {1.0f, 0.0f, 0.0f, -1.0f, 1.0f, 2.0f};
  float out[2];
  k.dot_f32(q, db, 2, 3, out);
  CHECK(out[0] == 1.0f);
  CHECK(out[1] == 7.0f);

  const std::int8_t qi[3] = {127, -127, 2};
  const std::int8_t dbi[3] = {127, 127, -3};
  std::int32_t outi[1];
  k.dot_i8(qi, dbi, 1, 3, outi);
  CHECK(outi[0] == -6);

  const std::uint8_t qb[9] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 0x0F};
  const std::uint8_t dbb[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0xF0};
  std::uint32_t outh[1];
  k.hamming(qb, dbb, 1, 9, outh);
  CHECK(outh[0] == 16);

  float outf[1];
  const std::uint16_t h[3] = {vpr::float_to_half(0.5f), vpr::float_to_half(-2.0f),
                              vpr::float_to_half(1.0f)};
  k.dot_f16(q, h, 1, 3, outf);
  CHECK(outf[0] == 0.5f - 4.0f + 3.0f);
}

TEST_CASE("batched kernels match the scalar reference") {
  std::mt19937 rng(7);
  const std::size_t dims[] = {1, 3, 8, 15, 16, 17, 33, 64, 65, 127, 256, 1024};
  const std::size_t rows[] = {0, 1, 2, 3, 5, 17, 100};
  for (vpr::SimdLevel level : simd_levels()) {
    const vpr::KernelTable& k = *vpr::kernels_for(level);
    for (std::size_t nq : kQueries) {
      for (std::size_t d : dims) {
        for (std::size_t n : rows) {
          if (nq * n * d > 100 * 100 * 256) continue;
          CAPTURE(vpr::simd_level_name(level));
          CAPTURE(nq);
          CAPTURE(d);
          CAPTURE(n);
          const std::size_t guard = 3;
          const std::vector<float> qf = random_floats(rng, nq * d);
          const std::vector<float> dbf = random_floats(rng, n * d);
          std::vector<float> want(nq * n + guard, -1.0f), got(nq * n + guard, -1.0f);
          reference().dot_f32_batch(qf.data(), nq, dbf.data(), n, d, want.data());
          k.dot_f32_batch(qf.data(), nq, dbf.data(), n, d, got.data());
          CHECK(got == want);

          const std::vector<std::int8_t> qi = random_i8(rng, nq * d);
          const std::vector<std::int8_t> dbi = random_i8(rng, n * d);
          std::vector<std::int32_t> want_i(nq * n + guard, -1), got_i(nq * n + guard, -1);
          reference().dot_i8_batch(qi.data(), nq, dbi.data(), n, d, want_i.data());
          k.dot_i8_batch(qi.data(), nq, dbi.data(), n, d, got_i.data());
          CHECK(got_i == want_i);
        }
      }
    }
  }
}

TEST_CASE("batched kernels cross row blocks") {
  // Enough rows that the batch kernels split the database into several L2 blocks
  // (with a remainder block), compared with the single-query kernel of the same level.
  std::mt19937 rng(11);
  const std::size_t d = 256;
  const std::size_t n = 1500;
  const std::size_t nq = 9;
  const std::vector<float> qf = random_floats(rng, nq * d);
  const std::vector<float> dbf = random_floats(rng, n * d);
  const std::vector<std::int8_t> qi = random_i8(rng, nq * d);
  const std::vector<std::int8_t> dbi = random_i8(rng, n * d);
  for (vpr::SimdLevel level : vpr::supported_simd_levels()) {
    CAPTURE(vpr::simd_level_name(level));
    const vpr::KernelTable& k = *vpr::kernels_for(level);
    std::vector<float> got(nq * n), want(nq * n);
    std::vector<std::int32_t> got_i(nq * n), want_i(nq * n);
    k.dot_f32_batch(qf.data(), nq, dbf.data(), n, d, got.data());
    k.dot_i8_batch(qi.data(), nq, dbi.data(), n, d, got_i.data());
    for (std::size_t j = 0; j < nq; ++j) {
      reference().dot_f32(qf.data() + j * d, dbf.data(), n, d, want.data() + j * n);
      reference().dot_i8(qi.data() + j * d, dbi.data(), n, d, want_i.data() + j * n);
    }
    CHECK(got == want);
    CHECK(got_i == want_i);
  }
}

TEST_CASE("float kernels stay close to the reference on real-valued data") {
  // Non-integer data: only the summation order differs, so results agree to a
  // few ulps of the magnitude of the terms.
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const std::size_t d = 1000, n = 37;
  std::vector<float> q(d), db(n * d);
  for (auto& x : q) x = dist(rng);
  for (auto& x : db) x = dist(rng);
  std::vector<std::uint16_t> dbh(n * d);
  for (std::size_t t = 0; t < dbh.size(); ++t) dbh[t] = vpr::float_to_half(db[t]);
  std::vector<float> want(n), got(n), want_h(n), got_h(n), got_b(n);
  reference().dot_f32(q.data(), db.data(), n, d, want.data());
  reference().dot_f16(q.data(), dbh.data(), n, d, want_h.data());
  for (vpr::SimdLevel level : simd_levels()) {
    CAPTURE(vpr::simd_level_name(level));
    const vpr::KernelTable& k = *vpr::kernels_for(level);
    k.dot_f32(q.data(), db.data(), n, d, got.data());
    k.dot_f16(q.data(), dbh.data(), n, d, got_h.data());
    k.dot_f32_batch(q.data(), 1, db.data(), n, d, got_b.data());
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-4).scale(30.0));
      CHECK(got_h[i] == doctest::Approx(want_h[i]).epsilon(1e-4).scale(30.0));
      CHECK(got_b[i] == doctest::Approx(want[i]).epsilon(1e-4).scale(30.0));
    }
  }
}

TEST_CASE("f16_to_f32 widens every half-precision bit pattern exactly") {
  // All 65536 patterns (zeros, subnormals, normals, infinities, NaNs), then an
  // odd-length tail.
  std::vector<std::uint16_t> all(65536 + 7);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
  std::vector<float> want(all.size()), got(all.size());
  reference().f16_to_f32(all.data(), all.size(), want.data());
  CHECK(want[0x3c00] == 1.0f);
  CHECK(want[0xc000] == -2.0f);
  CHECK(std::isinf(want[0x7c00]));
  CHECK(want[0x0001] == std::ldexp(1.0f, -24));  // smallest subnormal
  for (vpr::SimdLevel level : simd_levels()) {
    CAPTURE(vpr::simd_level_name(level));
    std::fill(got.begin(), got.end(), -1.0f);
    vpr::kernels_for(level)->f16_to_f32(all.data(), all.size(), got.data());
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
      const bool both_nan = std::isnan(want[i]) && std::isnan(got[i]);
      if (!both_nan && std::memcmp(&want[i], &got[i], sizeof(float)) != 0) ++mismatches;
    }
    CHECK(mismatches == 0);
  }
}
