#include "vpr/simd.hpp"

#include <atomic>
#include <stdexcept>

#include "kernel_tuning_internal.hpp"
#include "vpr/kernels.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace vpr {
namespace {

#if defined(__x86_64__)
struct X86Features {
  bool avx2 = false;    // AVX2 + FMA + F16C + POPCNT, with OS-saved YMM state
  bool avx512 = false;  // + AVX-512 F/DQ/BW/VL/VNNI/VPOPCNTDQ/VBMI, with OS-saved ZMM state
  bool amx = false;     // + AMX-TILE/INT8, with OS-saved tile state and this process allowed
};

// Linux saves the 8 KB of tile data only for processes that ask (arch_prctl
// ARCH_REQ_XCOMP_PERM, Linux 5.16+); without the permission the first tile instruction
// faults. The permission is per process and never revoked, so asking once is enough.
bool amx_permitted() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

// CPUID feature bits plus XGETBV: the OS must save the wider registers, or the
// instructions fault even though the CPU has them.
X86Features read_x86_features() {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), popcnt = c & (1u << 23), osxsave = c & (1u << 27),
             avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  std::uint32_t xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_saved = (xcr0_lo & 0x6u) == 0x6u;
  const bool zmm_saved = (xcr0_lo & 0xe6u) == 0xe6u;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17),
             avx512bw = b & (1u << 30), avx512vl = b & (1u << 31), vnni = c & (1u << 11),
             vpopcntdq = c & (1u << 14), vbmi = c & (1u << 1);
  f.avx2 = ymm_saved && avx2 && fma && f16c && popcnt;
  f.avx512 = f.avx2 && zmm_saved && avx512f && avx512dq && avx512bw && avx512vl && vnni &&
             vpopcntdq && vbmi;
  const bool amx_tile = d & (1u << 24), amx_int8 = d & (1u << 25);
  const bool tiles_saved = (xcr0_lo & 0x60000u) == 0x60000u;  // XTILECFG + XTILEDATA
  f.amx = f.avx512 && amx_tile && amx_int8 && tiles_saved && amx_permitted();
  return f;
}

const X86Features& x86_features() {
  static const X86Features features = read_x86_features();
  return features;
}
#endif

bool cpu_runs(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar:
      return true;
#if defined(__x86_64__)
    case SimdLevel::Avx2:
      return x86_features().avx2;
    case SimdLevel::Avx512:
      return x86_features().avx512;
    case SimdLevel::Amx:
      return x86_features().amx;
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

// Every level, each architecture's from worst to best: best_level() takes the last one
// this CPU and build run, and names are looked up here.
constexpr SimdLevel kAllLevels[] = {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512,
                                    SimdLevel::Amx,    SimdLevel::Neon, SimdLevel::NeonDotprod};

// -1: not forced.
std::atomic<int> g_forced{-1};

}  // namespace

const char* row_order_name(RowOrder order) {
  switch (order) {
    case RowOrder::Interleaved:
      return "interleaved";
    case RowOrder::SequentialPrefetch:
      return "sequential+prefetch";
    case RowOrder::SequentialSplitLoads:
      return "sequential+split";
    default:
      return "sequential";
  }
}

const KernelTable* kernels_for(SimdLevel level, RowOrder order) {
  (void)order;  // unused when the build has only the scalar level
  switch (level) {
    case SimdLevel::Scalar:
      return &scalar_kernels();
#if defined(VPR_HAVE_AVX2)
    case SimdLevel::Avx2:
      return &avx2_kernels(order);
#endif
#if defined(VPR_HAVE_AVX512)
    case SimdLevel::Avx512:
      return &avx512_kernels(order);
#endif
#if defined(VPR_HAVE_AMX)
    case SimdLevel::Amx:
      // Only where the tiles run: checking also asks the kernel for the tile permission,
      // without which the first tile instruction faults.
      return cpu_runs(SimdLevel::Amx) ? &amx_kernels(order) : nullptr;
#endif
#if defined(VPR_HAVE_NEON)
    case SimdLevel::Neon:
      return &neon_kernels(order);
#endif
#if defined(VPR_HAVE_NEON_DOTPROD)
    case SimdLevel::NeonDotprod:
      return &neon_dotprod_kernels(order);
#endif
    default:
      return nullptr;
  }
}

std::vector<SimdLevel> supported_simd_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel level : kAllLevels) {
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

bool simd_level_forced() { return g_forced.load(std::memory_order_relaxed) >= 0; }

const KernelTable& active_kernels() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return *kernels_for(static_cast<SimdLevel>(forced));
  return detail::tuned_kernels();
}

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
    case SimdLevel::Amx:
      return "amx";
    case SimdLevel::Neon:
      return "neon";
    case SimdLevel::NeonDotprod:
      return "neon_dotprod";
  }
  return "unknown";
}

SimdLevel simd_level_from_name(const std::string& name) {
  for (SimdLevel level : kAllLevels) {
    if (simd_level_name(level) == name) return level;
  }
  std::string names;
  for (SimdLevel level : kAllLevels) names += (names.empty() ? "" : ", ") + simd_level_name(level);
  throw std::invalid_argument("unknown SIMD level '" + name + "'; use one of: " + names);
}

}  // namespace vpr
