// Per-CPU choice of the single-query kernels by measurement (vpr/kernel_tuning.hpp).
#include "vpr/kernel_tuning.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

#include "kernel_tuning_internal.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace vpr {
namespace {

constexpr const char* kCacheHeader = "vpr-kernel-tuning 1";
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
    for (RowOrder order :
         {RowOrder::Sequential, RowOrder::SequentialPrefetch, RowOrder::Interleaved}) {
      out.push_back({level, order});
    }
  }
  return out;
}

KernelVariant fallback_variant() { return {detect_simd_level(), RowOrder::Sequential}; }

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

// 64 MB: larger than the last-level cache of the CPUs this project targets (Pi 4/5: 1-2
// MB L2, phones: up to 16 MB, Zen 4 CCD: 32 MB), so rows stream from DRAM as in a large
// map. sysconf's cache sizes are not trusted: a KVM guest here reported 256 MB of L3.
std::size_t default_buffer_bytes() {
  if (const char* bytes = std::getenv("VPR_KERNEL_TUNING_BYTES")) {
    const long long value = std::atoll(bytes);
    if (value >= (1 << 16)) return static_cast<std::size_t>(value);
  }
  return kBufferBytes;
}

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

// ---- the cache ---------------------------------------------------------------------

std::string cache_path() {
  if (const char* path = std::getenv("VPR_KERNEL_CACHE")) return path;
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg != '\0') return std::string(xdg) + "/vpr-embedded/kernel-tuning.txt";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') {
    return std::string(home) + "/.cache/vpr-embedded/kernel-tuning.txt";
  }
  return "";
}

bool variant_from(const std::string& level, const std::string& order, KernelVariant& v) {
  try {
    v.level = simd_level_from_name(level);
  } catch (const std::exception&) {
    return false;
  }
  if (order == "sequential") {
    v.order = RowOrder::Sequential;
  } else if (order == "sequential+prefetch") {
    v.order = RowOrder::SequentialPrefetch;
  } else if (order == "interleaved") {
    v.order = RowOrder::Interleaved;
  } else {
    return false;
  }
  const std::vector<KernelVariant> ok = candidates();
  return std::any_of(ok.begin(), ok.end(), [&](const KernelVariant& c) {
    return c.level == v.level && c.order == v.order;
  });
}

// Reads the picks for this CPU; returns false (with a reason) for a missing, stale or
// malformed file, which is then measured again and rewritten.
bool read_cache(const std::string& path, KernelTuning& t, std::string& note) {
  std::ifstream in(path);
  if (!in) {
    note = "none yet";
    return false;
  }
  std::string line;
  if (!std::getline(in, line) || line != kCacheHeader) {
    note = "unreadable (wrong header), measured again";
    return false;
  }
  std::string cpu, levels;
  if (!std::getline(in, cpu) || cpu != "cpu " + t.cpu || !std::getline(in, levels) ||
      levels != "levels " + levels_key()) {
    note = "for another CPU or build, measured again";
    return false;
  }
  std::vector<KernelPick> picks;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string word, kernel, rows, level, order;
    if (!(fields >> word >> kernel >> rows >> level >> order) || word != "pick") {
      note = "malformed line, measured again";
      return false;
    }
    int k = -1;
    for (int i = 0; i < kKernels; ++i) {
      if (kernel == kKernelNames[i]) k = i;
    }
    KernelVariant v;
    if (k < 0 || (rows != "short" && rows != "long") || !variant_from(level, order, v)) {
      note = "malformed line, measured again";
      return false;
    }
    KernelPick p = pick_from(k, rows == "long");
    p.chosen = v;
    p.why = "read from the cache";
    picks.push_back(p);
  }
  if (picks.size() != 2 * kKernels) {
    note = "incomplete, measured again";
    return false;
  }
  t.picks = picks;
  note = "read";
  return true;
}

// Written to a temporary file and renamed, so a reader never sees half a cache.
std::string write_cache(const std::string& path, const KernelTuning& t) {
  const std::size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    // Create each missing parent (mkdir -p); failures show up when the file is opened.
    for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
      if (pos == dir.size() || dir[pos] == '/') {
        const std::string part = dir.substr(0, pos);
        (void)::mkdir(part.c_str(), 0755);
      }
    }
  }
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return "not written (cannot create " + tmp + ")";
    out << kCacheHeader << "\ncpu " << t.cpu << "\nlevels " << levels_key() << "\n";
    for (const KernelPick& p : t.picks) {
      out << "pick " << p.kernel << " " << (p.min_dim >= kLongDim ? "long" : "short") << " "
          << simd_level_name(p.chosen.level) << " " << row_order_name(p.chosen.order) << "\n";
    }
    if (!out) return "not written (write failed)";
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return "not written (cannot rename into " + path + ")";
  }
  return "written";
}

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

void tune_once() {
  const char* mode_env = std::getenv("VPR_KERNEL_TUNING");
  const std::string mode = mode_env ? mode_env : "auto";
  KernelTuning t;
  if (mode == "off" || candidates().size() <= 1) {
    t.cpu = cpu_description();
    t.margin = kMargin;
    t.source = mode == "off" ? "default (VPR_KERNEL_TUNING=off)"
                             : "default (one candidate: nothing to choose)";
    for (int k = 0; k < kKernels; ++k) {
      for (bool long_rows : {false, true}) t.picks.push_back(pick_from(k, long_rows));
    }
    for (KernelPick& p : t.picks) p.why = "not measured";
  } else {
    const std::string path = cache_path();
    KernelTuning cached;
    cached.cpu = cpu_description();
    std::string note;
    if (mode != "measure" && !path.empty() && read_cache(path, cached, note)) {
      t = cached;
      t.source = "cache";
      t.margin = kMargin;
    } else {
      if (mode == "measure") note = "ignored (VPR_KERNEL_TUNING=measure)";
      t = calibrate_kernels();
      t.source = "measured";
      note += path.empty() ? "" : "; " + write_cache(path, t);
    }
    t.cache_path = path;
    t.cache_note = path.empty() ? "caching off (VPR_KERNEL_CACHE is empty)" : note;
  }
  install(t);
  g_tuning = t;
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

std::string cpu_description() {
  std::string out;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  char vendor[13] = {};
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &c, 4);
  }
  unsigned family = 0, model = 0, stepping = 0;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    const unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
    family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
    model = (base_family == 0x6 || base_family == 0xf) ? base_model | (((a >> 16) & 0xf) << 4)
                                                       : base_model;
    stepping = a & 0xf;
  }
  char brand[49] = {};
  for (unsigned leaf = 0; leaf < 3; ++leaf) {
    unsigned r[4];
    if (!__get_cpuid(0x80000002u + leaf, &r[0], &r[1], &r[2], &r[3])) break;
    std::memcpy(brand + 16 * leaf, r, 16);
  }
  std::string name(brand);
  name.erase(0, name.find_first_not_of(' '));
  while (!name.empty() && name.back() == ' ') name.pop_back();
  out = std::string(vendor) + " family " + std::to_string(family) + " model " +
        std::to_string(model) + " stepping " + std::to_string(stepping) + " (" + name + ")";
#else
  std::ifstream midr("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1");
  std::string value;
  if (midr >> value) {
    out = "MIDR " + value;
  } else {
    std::ifstream info("/proc/cpuinfo");
    std::string line, implementer, part;
    while (std::getline(info, line)) {
      if (line.rfind("CPU implementer", 0) == 0 && implementer.empty()) implementer = line;
      if (line.rfind("CPU part", 0) == 0 && part.empty()) part = line;
    }
    out = implementer.empty() ? "unknown CPU" : implementer + ", " + part;
    for (char& ch : out) {
      if (ch == '\t') ch = ' ';
    }
  }
#endif
  return out;
}

KernelTuning calibrate_kernels(std::size_t buffer_bytes, int rounds) {
  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  KernelTuning t;
  t.cpu = cpu_description();
  t.margin = kMargin;
  t.buffer_bytes = buffer_bytes == 0 ? default_buffer_bytes() : buffer_bytes;
  rounds = std::max(rounds, 1);
  // One buffer serves every kernel. Each 16-bit word is a normal half in [0.5, 1), whose
  // low byte is in [0, 127]: valid float16 values, int8 codes, and (two halves) normal
  // floats, so no kernel meets NaN, denormals or -128.
  std::vector<std::uint16_t> buffer(t.buffer_bytes / 2);
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
  if (!t.cache_path.empty()) out << "\ncache: " << t.cache_path << " (" << t.cache_note << ")";
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
