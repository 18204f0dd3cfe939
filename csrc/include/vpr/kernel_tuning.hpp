// Which kernel variant the single-query scans use on this CPU, chosen by measuring.
//
// The instruction set alone does not say which kernel is fastest: on a Zen 4 machine
// the AVX-512 int8 kernel took twice as long as the AVX2 one at D = 256 once the rows
// streamed from DRAM, and the order in which a kernel walks the rows (RowOrder) changed
// the time by up to 1.8x (docs/matching_speed.md). So at first use the core times each
// candidate (every SIMD level this CPU runs x the three row orders) on a database larger than
// the last-level cache, per kernel and row length, and keeps the default (best level,
// Sequential) unless another candidate is faster by more than the noise margin. The
// choice is cached per CPU in a small text file.
//
// Environment:
//   VPR_KERNEL_TUNING = auto (default: cached choice, else measure and cache)
//                     | off (no measurement: best level, Sequential)
//                     | measure (measure now, ignore and rewrite the cache)
//   VPR_KERNEL_CACHE  = file for the cache (default $XDG_CACHE_HOME/vpr-embedded/
//                       kernel-tuning.txt, else $HOME/.cache/...; "" disables caching)
//   VPR_KERNEL_TUNING_BYTES = database size to measure on (default 64 MB; tests use 4 MB)
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "vpr/kernels.hpp"
#include "vpr/simd.hpp"

namespace vpr {

struct KernelVariant {
  SimdLevel level = SimdLevel::Scalar;
  RowOrder order = RowOrder::Sequential;
};

std::string kernel_variant_name(const KernelVariant& v);  // e.g. "avx2/sequential"

struct KernelCandidate {
  KernelVariant variant;
  double median_ms = 0.0;  // over the calibration rounds (0 when read from the cache)
};

// The choice for one kernel and one row length.
struct KernelPick {
  std::string kernel;       // "dot_f32", "dot_f16" or "dot_i8"
  std::size_t min_dim = 0;  // applies to rows of dimension in [min_dim, max_dim]
  std::size_t max_dim = 0;
  std::size_t calibrated_dim = 0;
  KernelVariant chosen;
  KernelVariant fallback;  // best level, Sequential
  std::vector<KernelCandidate> candidates;
  std::string why;
};

struct KernelTuning {
  std::string cpu;         // vendor, family / model / stepping and brand (x86) or MIDR (arm)
  std::string source;      // "measured", "cache", "default (VPR_KERNEL_TUNING=off)", ...
  std::string cache_path;  // "" when caching is off
  std::string cache_note;  // what happened with the cache ("written", "stale: ...", ...)
  double margin = 0.0;     // a candidate must take under (1 - margin) of the fallback's time
  std::size_t buffer_bytes = 0;
  double seconds = 0.0;  // time the measurement took
  std::vector<KernelPick> picks;
};

// The tuning searches use (measured or read from the cache on first call, then fixed).
const KernelTuning& kernel_tuning();

// Measures now, on a database of buffer_bytes (0: VPR_KERNEL_TUNING_BYTES or 64 MB),
// without changing what searches use.
KernelTuning calibrate_kernels(std::size_t buffer_bytes = 0, int rounds = 5);

// A description of this CPU, the cache key.
std::string cpu_description();

// Human-readable report of a tuning (what was chosen and why).
std::string describe(const KernelTuning& tuning);

}  // namespace vpr
