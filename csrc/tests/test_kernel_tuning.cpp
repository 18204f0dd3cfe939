// The per-CPU kernel choice: calibration reports every candidate, picks one of them, and
// the table searches use (tuned trampolines) gives the scalar reference's results for
// short and long rows.
#include <doctest/doctest.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "vpr/kernel_tuning.hpp"
#include "vpr/kernels.hpp"
#include "vpr/simd.hpp"

namespace {

// Before any search in this process: measure on 4 MB and write no cache file.
const bool kTestEnvironment = [] {
  setenv("VPR_KERNEL_TUNING_BYTES", "4194304", 0);
  setenv("VPR_KERNEL_CACHE", "", 0);
  return true;
}();

std::size_t simd_candidates() {
  std::size_t count = 0;
  for (vpr::SimdLevel level : vpr::supported_simd_levels())
    count += level != vpr::SimdLevel::Scalar;
  return 3 * count;  // three row orders per level
}

}  // namespace

TEST_CASE("calibration times every candidate and picks one of them") {
  (void)kTestEnvironment;
  const vpr::KernelTuning t = vpr::calibrate_kernels(std::size_t{2} << 20, 2);
  CHECK(!t.cpu.empty());
  CHECK(t.buffer_bytes == (std::size_t{2} << 20));
  REQUIRE(t.picks.size() == 6);  // three kernels x short / long rows
  for (const vpr::KernelPick& p : t.picks) {
    CAPTURE(p.kernel);
    CAPTURE(p.calibrated_dim);
    CHECK(p.calibrated_dim >= p.min_dim);
    CHECK(p.calibrated_dim <= p.max_dim);
    CHECK(p.candidates.size() == simd_candidates());
    CHECK(!p.why.empty());
    bool chosen_is_candidate = p.candidates.empty() && p.chosen.level == p.fallback.level;
    for (const vpr::KernelCandidate& c : p.candidates) {
      CHECK(c.median_ms > 0.0);
      chosen_is_candidate |= c.variant.level == p.chosen.level && c.variant.order == p.chosen.order;
    }
    CHECK(chosen_is_candidate);
  }
  CHECK(vpr::describe(t).find("dot_i8") != std::string::npos);
}

TEST_CASE("the tuned kernels match the scalar reference for short and long rows") {
  (void)kTestEnvironment;
  vpr::reset_simd_level();
  const vpr::KernelTuning& t = vpr::kernel_tuning();
  MESSAGE(vpr::describe(t));
  CHECK(!t.source.empty());
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-8, 8), code(-127, 127);
  for (std::size_t d : {std::size_t{256}, std::size_t{1000}}) {
    const std::size_t n = 37;
    std::vector<float> q(d), db(n * d);
    std::vector<std::int8_t> qi(d), dbi(n * d);
    std::vector<std::uint16_t> dbh(n * d);
    for (auto& x : q) x = static_cast<float>(small(rng));
    for (std::size_t i = 0; i < db.size(); ++i) {
      db[i] = static_cast<float>(small(rng));
      dbh[i] = vpr::float_to_half(db[i]);
      dbi[i] = static_cast<std::int8_t>(code(rng));
    }
    for (auto& x : qi) x = static_cast<std::int8_t>(code(rng));
    const vpr::KernelTable& ref = vpr::scalar_kernels();
    const vpr::KernelTable& tuned = vpr::active_kernels();
    std::vector<float> want(n), got(n);
    ref.dot_f32(q.data(), db.data(), n, d, want.data());
    tuned.dot_f32(q.data(), db.data(), n, d, got.data());
    CHECK(got == want);
    ref.dot_f16(q.data(), dbh.data(), n, d, want.data());
    tuned.dot_f16(q.data(), dbh.data(), n, d, got.data());
    CHECK(got == want);
    std::vector<std::int32_t> want_i(n), got_i(n);
    ref.dot_i8(qi.data(), dbi.data(), n, d, want_i.data());
    tuned.dot_i8(qi.data(), dbi.data(), n, d, got_i.data());
    CHECK(got_i == want_i);
  }
}
