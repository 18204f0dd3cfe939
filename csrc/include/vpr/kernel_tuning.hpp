// Which kernel variant the single-query scans use on this CPU, and the measurement
// behind the choice.
//
// The instruction set alone does not say which kernel is fastest: on a Zen 4 machine
// the AVX-512 int8 kernel took twice as long as the AVX2 one at D = 256 once the rows
// streamed from DRAM, and the order in which a kernel walks the rows (RowOrder) changed
// the time by up to 1.8x on Zen 3 (docs/matching_speed.md). The choice is a fixed table
// per microarchitecture (so the same machine always runs the same code, with no timing at
// start-up): each entry comes from calibrate_kernels() on that microarchitecture, which
// times every candidate (each SIMD level this CPU runs x its row orders) on a database
// larger than the last-level cache (64 MB or twice the reported L3), in huge pages, per
// kernel and row length. A CPU without an entry gets the default: the best instruction
// set, rows in order.
//
// Environment: VPR_KERNEL_TUNING=off ignores the table (the default everywhere);
// VPR_KERNEL_TUNING_BYTES sets the database size calibrate_kernels() measures on.
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
  double median_ms = 0.0;  // over the measurement rounds
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
  std::string cpu;                // vendor, family / model / stepping and brand, or arm part
  std::string microarchitecture;  // "zen3", "zen4", "zen5", "cortex-a72", ... or ""
  std::string source;             // "table: zen3", "default (...)", "measured now"
  double margin = 0.0;            // a candidate must take under (1 - margin) of the fallback's time
  std::size_t buffer_bytes = 0;
  double seconds = 0.0;  // time the measurement took
  std::vector<KernelPick> picks;
};

// What identifies a CPU for the table: x86 cpuid vendor / family / model (stepping and
// brand for the report), or the arm MIDR implementer and part.
struct CpuId {
  std::string vendor;  // "AuthenticAMD", "GenuineIntel", "ARM", ...
  unsigned family = 0, model = 0, stepping = 0;
  std::string name;
  unsigned implementer = 0, part = 0;
};

CpuId read_cpu_id();
std::string describe_cpu(const CpuId& cpu);
// The table's name for a CPU, or "" when the table does not know it.
std::string microarchitecture(const CpuId& cpu);

// The choice for a CPU (entries whose level this build or machine cannot run are skipped).
KernelTuning kernel_tuning_for(const CpuId& cpu);

// The choice searches use: kernel_tuning_for(read_cpu_id()), fixed at first use.
const KernelTuning& kernel_tuning();

// Measures now, on a database of buffer_bytes (0: VPR_KERNEL_TUNING_BYTES, else 64 MB or twice
// the reported L3, whichever is larger, at most 1 GiB),
// without changing what searches use.
KernelTuning calibrate_kernels(std::size_t buffer_bytes = 0, int rounds = 5);

// describe_cpu(read_cpu_id()).
std::string cpu_description();

// Human-readable report of a tuning (what was chosen and why).
std::string describe(const KernelTuning& tuning);

}  // namespace vpr
