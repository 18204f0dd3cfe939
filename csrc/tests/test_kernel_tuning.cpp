// The kernel choice: the per-microarchitecture table, the measurement that fills it (every
// candidate timed, one of them picked), and the table searches use (tuned trampolines)
// giving the scalar reference's results for short and long rows.
#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vpr/kernel_tuning.hpp"
#include "vpr/kernels.hpp"
#include "vpr/simd.hpp"

namespace {

// Measurements in this process default to 4 MB (the tests check validity, not speed).
const bool kTestEnvironment = [] {
  setenv("VPR_KERNEL_TUNING_BYTES", "4194304", 0);
  return true;
}();

bool runs(vpr::SimdLevel level) {
  for (vpr::SimdLevel l : vpr::supported_simd_levels()) {
    if (l == level) return true;
  }
  return false;
}

std::size_t simd_candidates() {
  std::size_t count = 0;
  for (vpr::SimdLevel level : vpr::supported_simd_levels())
    count += level != vpr::SimdLevel::Scalar && level != vpr::SimdLevel::Amx;
  // three row orders per level, plus split loads for avx512; amx's single-query kernels
  // are avx512's
  return 3 * count + (runs(vpr::SimdLevel::Avx512) ? 1 : 0);
}

// The default's level: the best one, where amx names AVX-512's single-query kernels.
vpr::SimdLevel best_single_query_level() {
  const vpr::SimdLevel best = vpr::detect_simd_level();
  return best == vpr::SimdLevel::Amx ? vpr::SimdLevel::Avx512 : best;
}

vpr::CpuId x86_cpu(const char* vendor, unsigned family, unsigned model) {
  vpr::CpuId id;
  id.vendor = vendor;
  id.family = family;
  id.model = model;
  return id;
}

// A pick the table left alone: the best level, rows in order, said to be the default.
void check_default(const vpr::KernelPick& p, vpr::SimdLevel best) {
  CHECK(p.chosen.level == best);
  CHECK(p.chosen.order == vpr::RowOrder::Sequential);
  CHECK(p.why.find("default") == 0);
}

// Every pick of `t`: where `entry` names the table's variant for it (and this CPU runs that
// level), that variant, said to come from `arch`'s entry; elsewhere the default.
using EntryFor = std::function<std::optional<vpr::KernelVariant>(const vpr::KernelPick&)>;
void check_entries(const vpr::KernelTuning& t, const std::string& arch, const EntryFor& entry) {
  for (const vpr::KernelPick& p : t.picks) {
    CAPTURE(p.kernel);
    CAPTURE(p.min_dim);
    const std::optional<vpr::KernelVariant> want = entry(p);
    if (want && runs(want->level)) {
      CHECK(p.chosen.level == want->level);
      CHECK(p.chosen.order == want->order);
      CHECK(p.why.find("table entry for " + arch) != std::string::npos);
    } else {
      check_default(p, best_single_query_level());
    }
  }
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

TEST_CASE("microarchitectures are named from cpuid and MIDR") {
  auto amd = [](unsigned family, unsigned model) {
    return vpr::microarchitecture(x86_cpu("AuthenticAMD", family, model));
  };
  CHECK(amd(25, 1) == "zen3");     // EPYC 7003 (Milan), the machine of the zen3 entries
  CHECK(amd(25, 0x21) == "zen3");  // Ryzen 5000 (Vermeer)
  CHECK(amd(25, 0x11) == "zen4");  // EPYC 9004 (Genoa), the Zen 4
  CHECK(amd(25, 0x61) == "zen4");  // Ryzen 7000 (Raphael)
  CHECK(amd(26, 0x44) == "zen5");
  CHECK(amd(23, 0x31) == "");  // Zen 2: no entry
  vpr::CpuId arm;
  arm.vendor = "ARM";
  arm.implementer = 0x41;
  arm.part = 0xd08;
  CHECK(vpr::microarchitecture(arm) == "cortex-a72");
  arm.part = 0xd0b;
  CHECK(vpr::microarchitecture(arm) == "cortex-a76");
  CHECK(vpr::microarchitecture(vpr::CpuId{}) == "");
  // the Xeon guest of the intel-6-167 entry
  CHECK(vpr::microarchitecture(x86_cpu("GenuineIntel", 6, 167)) == "intel-6-167");
}

TEST_CASE("the intel-6-167 entries pick split loads and interleaved rows for float32") {
  const vpr::KernelTuning t = vpr::kernel_tuning_for(x86_cpu("GenuineIntel", 6, 167));
  check_entries(
      t, "intel-6-167", [](const vpr::KernelPick& p) -> std::optional<vpr::KernelVariant> {
        if (p.kernel != "dot_f32") return std::nullopt;
        return vpr::KernelVariant{
            vpr::SimdLevel::Avx512,
            p.min_dim == 513 ? vpr::RowOrder::Interleaved : vpr::RowOrder::SequentialSplitLoads};
      });
}

TEST_CASE("the zen4 entries pick AVX2 for float16") {
  const vpr::KernelTuning t = vpr::kernel_tuning_for(x86_cpu("AuthenticAMD", 25, 17));
  CHECK(t.microarchitecture == "zen4");
  check_entries(t, "zen4", [](const vpr::KernelPick& p) -> std::optional<vpr::KernelVariant> {
    if (p.kernel != "dot_f16") return std::nullopt;
    return vpr::KernelVariant{vpr::SimdLevel::Avx2, p.max_dim == 512
                                                        ? vpr::RowOrder::SequentialPrefetch
                                                        : vpr::RowOrder::Sequential};
  });
}

TEST_CASE("the table gives its entries where they run and the default elsewhere") {
  const vpr::KernelTuning t = vpr::kernel_tuning_for(x86_cpu("AuthenticAMD", 25, 1));
  CHECK(t.microarchitecture == "zen3");
  REQUIRE(t.picks.size() == 6);
  check_entries(t, "zen3", [](const vpr::KernelPick& p) -> std::optional<vpr::KernelVariant> {
    if (p.kernel == "dot_i8" && p.max_dim == 512) {
      return vpr::KernelVariant{vpr::SimdLevel::Avx2, vpr::RowOrder::SequentialPrefetch};
    }
    if (p.kernel == "dot_f32" && p.min_dim == 513) {
      return vpr::KernelVariant{vpr::SimdLevel::Avx2, vpr::RowOrder::Interleaved};
    }
    return std::nullopt;
  });
  const vpr::SimdLevel best = best_single_query_level();
  const vpr::KernelTuning unknown = vpr::kernel_tuning_for(vpr::CpuId{});
  CHECK(unknown.source == "default (no table entry for this CPU)");
  for (const vpr::KernelPick& p : unknown.picks) check_default(p, best);
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
