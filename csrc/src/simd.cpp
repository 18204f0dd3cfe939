#include "vpr/simd.hpp"

#include <atomic>
#include <stdexcept>

#include "vpr/kernels.hpp"

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace vpr {
namespace {

bool cpu_runs(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar:
      return true;
#if defined(__x86_64__)
    case SimdLevel::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c") && __builtin_cpu_supports("popcnt");
    case SimdLevel::Avx512:
      return cpu_runs(SimdLevel::Avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vpopcntdq") &&
             __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__aarch64__)
    case SimdLevel::Neon:
      return true;  // Advanced SIMD is mandatory on aarch64.
    case SimdLevel::NeonDotprod:
#if defined(__linux__)
      return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
      return false;
#endif
#endif
    default:
      return false;
  }
}

SimdLevel best_level() {
  SimdLevel best = SimdLevel::Scalar;
  for (SimdLevel level : supported_simd_levels()) best = level;
  return best;
}

// -1: not forced.
std::atomic<int> g_forced{-1};

}  // namespace

const KernelTable* kernels_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar:
      return &scalar_kernels();
#if defined(VPR_HAVE_AVX2)
    case SimdLevel::Avx2:
      return &avx2_kernels();
#endif
#if defined(VPR_HAVE_AVX512)
    case SimdLevel::Avx512:
      return &avx512_kernels();
#endif
#if defined(VPR_HAVE_NEON)
    case SimdLevel::Neon:
      return &neon_kernels();
#endif
#if defined(VPR_HAVE_NEON_DOTPROD)
    case SimdLevel::NeonDotprod:
      return &neon_dotprod_kernels();
#endif
    default:
      return nullptr;
  }
}

std::vector<SimdLevel> supported_simd_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512, SimdLevel::Neon,
                          SimdLevel::NeonDotprod}) {
    if (kernels_for(level) != nullptr && cpu_runs(level)) levels.push_back(level);
  }
  return levels;
}

SimdLevel detect_simd_level() {
  static const SimdLevel detected = best_level();
  return detected;
}

SimdLevel active_simd_level() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  return forced < 0 ? detect_simd_level() : static_cast<SimdLevel>(forced);
}

const KernelTable& active_kernels() { return *kernels_for(active_simd_level()); }

void force_simd_level(SimdLevel level) {
  if (kernels_for(level) == nullptr || !cpu_runs(level)) {
    throw std::invalid_argument("SIMD level '" + simd_level_name(level) +
                                "' is not available on this CPU or build");
  }
  g_forced.store(static_cast<int>(level), std::memory_order_relaxed);
}

void reset_simd_level() { g_forced.store(-1, std::memory_order_relaxed); }

std::string simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar:
      return "scalar";
    case SimdLevel::Avx2:
      return "avx2";
    case SimdLevel::Avx512:
      return "avx512";
    case SimdLevel::Neon:
      return "neon";
    case SimdLevel::NeonDotprod:
      return "neon_dotprod";
  }
  return "unknown";
}

SimdLevel simd_level_from_name(const std::string& name) {
  for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512, SimdLevel::Neon,
                          SimdLevel::NeonDotprod}) {
    if (simd_level_name(level) == name) return level;
  }
  throw std::invalid_argument("unknown SIMD level '" + name +
                              "'; use one of: scalar, avx2, avx512, neon, neon_dotprod");
}

}  // namespace vpr
