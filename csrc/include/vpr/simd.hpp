// Runtime SIMD level selection for the matching kernels.
#pragma once

#include <string>
#include <vector>

namespace vpr {

// Ordered from least to most capable within each architecture.
enum class SimdLevel : int {
  Scalar = 0,
  Avx2 = 1,         // x86_64: AVX2 + FMA + F16C + POPCNT
  Avx512 = 2,       // x86_64: AVX-512 F/DQ/BW/VL + VNNI, VPOPCNTDQ, VBMI
  Neon = 3,         // aarch64 baseline (armv8-a, Cortex-A72)
  NeonDotprod = 4,  // aarch64 armv8.2-a+dotprod (Cortex-A76)
  Amx = 5,          // x86_64: Avx512 + AMX-TILE/INT8 tiles for int8 query batches
};

// Best level this CPU and this build support (cpuid on x86, hwcap on aarch64).
SimdLevel detect_simd_level();

// Every level this CPU and build can run, Scalar first.
std::vector<SimdLevel> supported_simd_levels();

// Level used by searches now: the detected one unless forced.
SimdLevel active_simd_level();

// Force a level (tests cover every level this way). Throws std::invalid_argument
// if the CPU or the build cannot run it.
void force_simd_level(SimdLevel level);

// Back to the detected level.
void reset_simd_level();

// True while a level is forced (searches then bypass the calibrated choice).
bool simd_level_forced();

std::string simd_level_name(SimdLevel level);
// Throws std::invalid_argument for an unknown name.
SimdLevel simd_level_from_name(const std::string& name);

}  // namespace vpr
