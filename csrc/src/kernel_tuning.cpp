// Per-microarchitecture choice of the single-query kernels, and the measurement that
// fills the table (vpr/kernel_tuning.hpp).
#include "vpr/kernel_tuning.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <sstream>
#include <vector>

#include "kernel_tuning_internal.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace vpr {
namespace {

constexpr double kMargin = 0.10;  // noise margin: a candidate must take < 90% of the time
// Rows of more than 512 values are "long" (calibrated at 1024), the others "short" (at
// 256): int8 rows of 256 and 512 bytes behaved alike on Zen 3, 1 KB rows did not.
constexpr std::size_t kLongDim = 513;
constexpr std::size_t kShortCalibrationDim = 256;
constexpr std::size_t kLongCalibrationDim = 1024;
constexpr std::size_t kBufferBytes = std::size_t{64} << 20;

enum Kernel : int { kDotF32 = 0, kDotF16 = 1, kDotI8 = 2, kKernels = 3 };
const char* const kKernelNames[kKernels] = {"dot_f32", "dot_f16", "dot_i8"};
const std::size_t kElementBytes[kKernels] = {4, 2, 1};

std::string levels_key() {
  std::string key;
  for (SimdLevel level : supported_simd_levels())
    key += (key.empty() ? "" : ",") + simd_level_name(level);
  return key;
}

std::vector<KernelVariant> candidates() {
  std::vector<KernelVariant> out;
  for (SimdLevel level : supported_simd_levels()) {
    if (level == SimdLevel::Scalar) continue;  // the reference, never the fast path
    if (level == SimdLevel::Amx) continue;     // its single-query kernels are AVX-512's
    for (RowOrder order :
         {RowOrder::Sequential, RowOrder::SequentialPrefetch, RowOrder::Interleaved}) {
      out.push_back({level, order});
    }
    // Split loads differ from Sequential only in AVX-512's float32 kernel.
    if (level == SimdLevel::Avx512) out.push_back({level, RowOrder::SequentialSplitLoads});
  }
  return out;
}

// The best level's kernels, rows in order; for amx that is AVX-512's single-query kernels
// (the AMX table differs only in its batches), so the choice is named after them.
KernelVariant fallback_variant() {
  const SimdLevel best = detect_simd_level();
  return {best == SimdLevel::Amx ? SimdLevel::Avx512 : best, RowOrder::Sequential};
}

void run_kernel(const KernelTable& kt, int kernel, const void* db, std::size_t n, std::size_t d,
                const float* qf, const std::int8_t* qi, void* out) {
  switch (kernel) {
    case kDotF32:
      kt.dot_f32(qf, static_cast<const float*>(db), n, d, static_cast<float*>(out));
      return;
    case kDotF16:
      kt.dot_f16(qf, static_cast<const std::uint16_t*>(db), n, d, static_cast<float*>(out));
      return;
    default:
      kt.dot_i8(qi, static_cast<const std::int8_t*>(db), n, d, static_cast<std::int32_t*>(out));
  }
}

// At least 64 MB, which is larger than the last-level cache of the CPUs this project
// targets (Pi 4/5: 1-2 MB L2, phones: up to 16 MB, a Zen 4 CCD: 32 MB), and at least twice
// the L3 that sysconf reports: an Intel Xeon guest here reported 480 MiB of L3, and the 64
// MB buffer then ran at 27 GB/s against 18 GB/s from DRAM and chose differently
// (docs/matching_speed.md). The report is not always what one core sees (an AMD guest
// reported its socket's 256 MB, where a core reaches its CCD's 32 MB), but an over-large
// buffer only makes the measurement longer. Capped at 1 GiB and at an eighth of RAM.
std::size_t default_buffer_bytes() {
  if (const char* bytes = std::getenv("VPR_KERNEL_TUNING_BYTES")) {
    const long long value = std::atoll(bytes);
    if (value >= (1 << 16)) return static_cast<std::size_t>(value);
  }
  std::size_t bytes = kBufferBytes;
#if defined(_SC_LEVEL3_CACHE_SIZE)
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 > 0) bytes = std::max(bytes, 2 * static_cast<std::size_t>(l3));
#endif
  bytes = std::min(bytes, std::size_t{1} << 30);
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) {
    const std::size_t ram = static_cast<std::size_t>(pages) * static_cast<std::size_t>(page);
    bytes = std::max(kBufferBytes, std::min(bytes, ram / 8));
  }
  return bytes;
}

// 16-bit words on 2 MB boundaries, madvise(MADV_HUGEPAGE) on Linux.
class HugePageBuffer {
 public:
  explicit HugePageBuffer(std::size_t count) : count_(count) {
    constexpr std::size_t kHuge = std::size_t{2} << 20;
    const std::size_t bytes = (count * 2 + kHuge - 1) / kHuge * kHuge;
    data_ = static_cast<std::uint16_t*>(std::aligned_alloc(kHuge, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(data_, bytes, MADV_HUGEPAGE);  // a hint: refused or not, the buffer works
#endif
  }
  ~HugePageBuffer() { std::free(data_); }
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;
  std::uint16_t& operator[](std::size_t i) { return data_[i]; }
  const std::uint16_t* data() const { return data_; }
  std::size_t size() const { return count_; }

 private:
  std::uint16_t* data_ = nullptr;
  std::size_t count_ = 0;
};

KernelPick pick_from(int kernel, bool long_rows) {
  KernelPick p;
  p.kernel = kKernelNames[kernel];
  p.min_dim = long_rows ? kLongDim : 1;
  p.max_dim = long_rows ? static_cast<std::size_t>(-1) : kLongDim - 1;
  p.calibrated_dim = long_rows ? kLongCalibrationDim : kShortCalibrationDim;
  p.fallback = fallback_variant();
  p.chosen = p.fallback;
  return p;
}

// ---- the table ---------------------------------------------------------------------

// Entries measured with calibrate_kernels() (`vpr-embedded kernels --measure`) on the
// machine named; each kept only where the choice was the same in repeated runs and
// beat the default by more than the margin (docs/matching_speed.md). A CPU without an
// entry, or an entry whose level this CPU or build lacks, gets the default.
struct TableEntry {
  const char* microarchitecture;
  int kernel;
  bool long_rows;
  SimdLevel level;
  RowOrder order;
  const char* evidence;
};

constexpr const char* kZen3Evidence =
    "measured on AMD EPYC family 25 model 1 (Zen 3, KVM, 2 cores), 2026-12-01";

// The guest's cpuid says family 6 model 167 (0xa7, a Rocket Lake desktop part) but
// reports AMX and AVX512-FP16 and 480 MiB of L3: a Xeon of the Sapphire Rapids generation
// or later behind a hypervisor's model number, so the entry is keyed by what it reports.
constexpr const char* kXeonA7Evidence =
    "measured on GenuineIntel family 6 model 167 (Xeon with AMX, KVM, 2 cores), 960 MiB in "
    "huge pages, 3 runs agreeing, 2026-12-02";

// The Zen 4 machine: four runs of `kernels --measure` (64 MiB buffer in huge
// pages) chose the same float16 picks (AVX-512 float16 took 2.0-2.2x AVX2's time on long
// rows, 1.15-1.2x on short rows), and searches of 100k rows agreed (D = 1024: 9.2 against
// 14.9 ms). Float32 long rows are left out: the measurement chose AVX2 (71-77%), but in
// searches the two levels tied (17.2-17.3 against 16.4-16.7 ms; docs/matching_speed.md).
constexpr const char* kZen4Evidence =
    "measured on AMD EPYC family 25 model 17 (Zen 4, KVM, 2 cores), 4 runs, 2026-12-03";

const TableEntry kTable[] = {
    {"zen3", kDotF32, true, SimdLevel::Avx2, RowOrder::Interleaved, kZen3Evidence},
    {"zen3", kDotI8, false, SimdLevel::Avx2, RowOrder::SequentialPrefetch, kZen3Evidence},
    {"zen4", kDotF16, false, SimdLevel::Avx2, RowOrder::SequentialPrefetch, kZen4Evidence},
    {"zen4", kDotF16, true, SimdLevel::Avx2, RowOrder::Sequential, kZen4Evidence},
    // 77-78% and 81% of avx512/sequential's time
    {"intel-6-167", kDotF32, false, SimdLevel::Avx512, RowOrder::SequentialSplitLoads,
     kXeonA7Evidence},
    {"intel-6-167", kDotF32, true, SimdLevel::Avx512, RowOrder::Interleaved, kXeonA7Evidence},
};

// ---- the tuning in use -------------------------------------------------------------

KernelTuning g_tuning;
const KernelTable* g_tables[kKernels][2] = {};  // [kernel][long rows]
std::once_flag g_once;

void install(const KernelTuning& t) {
  for (const KernelPick& p : t.picks) {
    int k = 0;
    for (int i = 0; i < kKernels; ++i) {
      if (p.kernel == kKernelNames[i]) k = i;
    }
    g_tables[k][p.min_dim >= kLongDim ? 1 : 0] = kernels_for(p.chosen.level, p.chosen.order);
  }
}

bool runs_here(SimdLevel level) {
  for (SimdLevel l : supported_simd_levels()) {
    if (l == level) return true;
  }
  return false;
}

void tune_once() {
  const char* mode = std::getenv("VPR_KERNEL_TUNING");
  if (mode != nullptr && std::string(mode) == "off") {
    g_tuning = kernel_tuning_for(CpuId{});
    g_tuning.cpu = cpu_description();
    g_tuning.source = "default (VPR_KERNEL_TUNING=off)";
  } else {
    g_tuning = kernel_tuning_for(read_cpu_id());
  }
  install(g_tuning);
}

// Trampolines: one indirect call per scanned block (thousands of rows), not per row.
void tuned_dot_f32(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  g_tables[kDotF32][d >= kLongDim]->dot_f32(q, db, n, d, out);
}
void tuned_dot_f16(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d,
                   float* out) {
  g_tables[kDotF16][d >= kLongDim]->dot_f16(q, db, n, d, out);
}
void tuned_dot_i8(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                  std::int32_t* out) {
  g_tables[kDotI8][d >= kLongDim]->dot_i8(q, db, n, d, out);
}

}  // namespace

std::string kernel_variant_name(const KernelVariant& v) {
  return simd_level_name(v.level) + "/" + row_order_name(v.order);
}

CpuId read_cpu_id() {
  CpuId id;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  char vendor[13] = {};
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &c, 4);
  }
  id.vendor = vendor;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    const unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
    id.family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
    id.model = (base_family == 0x6 || base_family == 0xf) ? base_model | (((a >> 16) & 0xf) << 4)
                                                          : base_model;
    id.stepping = a & 0xf;
  }
  char brand[49] = {};
  for (unsigned leaf = 0; leaf < 3; ++leaf) {
    unsigned r[4];
    if (!__get_cpuid(0x80000002u + leaf, &r[0], &r[1], &r[2], &r[3])) break;
    std::memcpy(brand + 16 * leaf, r, 16);
  }
  id.name = brand;
  id.name.erase(0, id.name.find_first_not_of(' '));
  while (!id.name.empty() && id.name.back() == ' ') id.name.pop_back();
#else
  // MIDR_EL1: implementer [31:24], part number [15:4] (0x41 = Arm; 0xd08 = Cortex-A72,
  // 0xd0b = Cortex-A76). From sysfs, else from /proc/cpuinfo's "CPU implementer/part".
  std::ifstream midr("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1");
  std::string value;
  if (midr >> value) {
    const unsigned long bits = std::strtoul(value.c_str(), nullptr, 16);
    id.implementer = static_cast<unsigned>((bits >> 24) & 0xff);
    id.part = static_cast<unsigned>((bits >> 4) & 0xfff);
  } else {
    std::ifstream info("/proc/cpuinfo");
    std::string line;
    while (std::getline(info, line)) {
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      const unsigned long v = std::strtoul(line.c_str() + colon + 1, nullptr, 0);
      if (line.rfind("CPU implementer", 0) == 0 && id.implementer == 0) {
        id.implementer = static_cast<unsigned>(v);
      }
      if (line.rfind("CPU part", 0) == 0 && id.part == 0) id.part = static_cast<unsigned>(v);
    }
  }
  id.vendor = id.implementer == 0x41 ? "ARM" : "implementer " + std::to_string(id.implementer);
#endif
  return id;
}

std::string describe_cpu(const CpuId& id) {
  if (id.vendor.empty()) return "unknown CPU";
  if (id.implementer != 0 || id.part != 0) {
    char part[16];
    std::snprintf(part, sizeof part, "0x%03x", id.part);
    return id.vendor + " part " + part;
  }
  return id.vendor + " family " + std::to_string(id.family) + " model " + std::to_string(id.model) +
         " stepping " + std::to_string(id.stepping) + (id.name.empty() ? "" : " (" + id.name + ")");
}

std::string cpu_description() { return describe_cpu(read_cpu_id()); }

std::string microarchitecture(const CpuId& id) {
  if (id.vendor == "AuthenticAMD" && id.family == 0x19) {
    // Family 19h: Zen 3 at models 00-0f, 20-2f, 40-5f; Zen 4 at 10-1f, 60-7f, a0-af.
    const unsigned m = id.model;
    if (m <= 0x0f || (m >= 0x20 && m <= 0x2f) || (m >= 0x40 && m <= 0x5f)) return "zen3";
    if ((m >= 0x10 && m <= 0x1f) || (m >= 0x60 && m <= 0x7f) || (m >= 0xa0 && m <= 0xaf)) {
      return "zen4";
    }
  }
  if (id.vendor == "AuthenticAMD" && id.family == 0x1a) return "zen5";
  // Intel models are not named here (hypervisors report other models' numbers, above):
  // the key is what cpuid says, e.g. intel-6-167.
  if (id.vendor == "GenuineIntel" && id.family != 0) {
    return "intel-" + std::to_string(id.family) + "-" + std::to_string(id.model);
  }
  if (id.implementer == 0x41 && id.part == 0xd08) return "cortex-a72";
  if (id.implementer == 0x41 && id.part == 0xd0b) return "cortex-a76";
  return "";
}

KernelTuning kernel_tuning_for(const CpuId& cpu) {
  KernelTuning t;
  t.cpu = describe_cpu(cpu);
  t.microarchitecture = microarchitecture(cpu);
  t.margin = kMargin;
  bool used = false;
  for (int k = 0; k < kKernels; ++k) {
    for (bool long_rows : {false, true}) {
      KernelPick p = pick_from(k, long_rows);
      p.why = "default: the best instruction set, rows in order";
      for (const TableEntry& e : kTable) {
        if (t.microarchitecture != e.microarchitecture || e.kernel != k ||
            e.long_rows != long_rows) {
          continue;
        }
        if (!runs_here(e.level)) {
          p.why = "default: the table's " + kernel_variant_name({e.level, e.order}) + " for " +
                  e.microarchitecture + " is not in this build or CPU";
          continue;
        }
        p.chosen = {e.level, e.order};
        p.why = std::string("table entry for ") + e.microarchitecture + ", " + e.evidence;
        used = true;
      }
      t.picks.push_back(p);
    }
  }
  if (t.microarchitecture.empty()) {
    t.source = "default (no table entry for this CPU)";
  } else {
    t.source = std::string(used ? "table: " : "default (no table entry differs) for ") +
               t.microarchitecture;
  }
  return t;
}

KernelTuning calibrate_kernels(std::size_t buffer_bytes, int rounds) {
  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  KernelTuning t;
  const CpuId cpu = read_cpu_id();
  t.cpu = describe_cpu(cpu);
  t.microarchitecture = microarchitecture(cpu);
  t.source = "measured now";
  t.margin = kMargin;
  t.buffer_bytes = buffer_bytes == 0 ? default_buffer_bytes() : buffer_bytes;
  rounds = std::max(rounds, 1);
  // One buffer serves every kernel. Each 16-bit word is a normal half in [0.5, 1), whose
  // low byte is in [0, 127]: valid float16 values, int8 codes, and (two halves) normal
  // floats, so no kernel meets NaN, denormals or -128.
  // Held as numpy holds a large array, in transparent huge pages where the system grants
  // them (madvise): with 4 KB pages every candidate streamed 10-20% slower on the Xeon
  // guest (intel-6-167) and the differences between them shrank (docs/matching_speed.md).
  HugePageBuffer buffer(t.buffer_bytes / 2);
  for (std::size_t i = 0; i < buffer.size(); ++i) {
    buffer[i] = static_cast<std::uint16_t>(0x3800u | ((i * 7u) & 0x37fu));
  }
  const std::vector<KernelVariant> variants = candidates();
  for (int k = 0; k < kKernels; ++k) {
    for (bool long_rows : {false, true}) {
      KernelPick p = pick_from(k, long_rows);
      const std::size_t d = p.calibrated_dim;
      const std::size_t n = t.buffer_bytes / (d * kElementBytes[k]);
      std::vector<float> qf(d, 0.25f);
      std::vector<std::int8_t> qi(d, 3);
      std::vector<float> out(n);  // float or int32, same size
      std::vector<std::vector<double>> times(variants.size());
      for (int r = 0; r < rounds + 1; ++r) {  // round 0 warms up (page faults, caches)
        for (std::size_t c = 0; c < variants.size(); ++c) {
          const std::size_t v = (c + static_cast<std::size_t>(r)) % variants.size();
          const KernelTable& kt = *kernels_for(variants[v].level, variants[v].order);
          const auto t0 = clock::now();
          run_kernel(kt, k, buffer.data(), n, d, qf.data(), qi.data(), out.data());
          const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
          if (r > 0) times[v].push_back(ms);
        }
      }
      // Candidates ran next to each other in every round, so each round gives a paired
      // ratio to the fallback; the median ratio decides (robust to a noisy neighbour).
      std::size_t fallback = 0;
      for (std::size_t v = 0; v < variants.size(); ++v) {
        if (variants[v].level == p.fallback.level && variants[v].order == p.fallback.order) {
          fallback = v;
        }
      }
      std::size_t best = fallback;
      double best_ratio = 1.0;
      for (std::size_t v = 0; v < variants.size(); ++v) {
        std::vector<double> ratios;
        for (std::size_t r = 0; r < times[v].size(); ++r) {
          ratios.push_back(times[v][r] / times[fallback][r]);
        }
        std::sort(ratios.begin(), ratios.end());
        const double ratio = ratios[ratios.size() / 2];
        if (ratio < best_ratio) {
          best_ratio = ratio;
          best = v;
        }
      }
      for (std::size_t v = 0; v < variants.size(); ++v) {
        std::vector<double> sorted = times[v];
        std::sort(sorted.begin(), sorted.end());
        p.candidates.push_back({variants[v], sorted[sorted.size() / 2]});
      }
      const double fallback_ms = p.candidates[fallback].median_ms;
      char why[256];
      if (best != fallback && best_ratio < 1.0 - kMargin) {
        p.chosen = variants[best];
        std::snprintf(why, sizeof why,
                      "%s takes %.0f%% of %s's time (median of paired rounds; margin %.0f%%)",
                      kernel_variant_name(variants[best]).c_str(), 100.0 * best_ratio,
                      kernel_variant_name(p.fallback).c_str(), 100.0 * kMargin);
      } else {
        std::snprintf(why, sizeof why,
                      "%s %.3f ms: no candidate faster by more than the %.0f%% margin",
                      kernel_variant_name(p.fallback).c_str(), fallback_ms, 100.0 * kMargin);
      }
      p.why = why;
      t.picks.push_back(p);
    }
  }
  t.seconds = std::chrono::duration<double>(clock::now() - started).count();
  return t;
}

const KernelTuning& kernel_tuning() {
  std::call_once(g_once, tune_once);
  return g_tuning;
}

std::string describe(const KernelTuning& t) {
  std::ostringstream out;
  out << "cpu: " << t.cpu << "\nlevels: " << levels_key() << "\nsource: " << t.source;
  if (!t.microarchitecture.empty()) out << " (microarchitecture " << t.microarchitecture << ")";
  if (t.buffer_bytes > 0) {
    out << "\nmeasured on " << (t.buffer_bytes >> 20) << " MiB in " << t.seconds << " s";
  }
  for (const KernelPick& p : t.picks) {
    out << "\n"
        << p.kernel << " " << (p.min_dim >= kLongDim ? "D>512" : "D<=512") << ": "
        << kernel_variant_name(p.chosen) << "  (" << p.why << ")";
    for (const KernelCandidate& c : p.candidates) {
      out << "\n    " << kernel_variant_name(c.variant) << " " << c.median_ms << " ms";
    }
  }
  return out.str();
}

namespace detail {

const KernelTable& tuned_kernels() {
  static const KernelTable* table = [] {
    (void)kernel_tuning();
    static KernelTable t = *kernels_for(detect_simd_level());
    t.dot_f32 = tuned_dot_f32;
    t.dot_f16 = tuned_dot_f16;
    t.dot_i8 = tuned_dot_i8;
    return &t;
  }();
  return *table;
}

}  // namespace detail
}  // namespace vpr
