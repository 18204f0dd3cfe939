// libFuzzer target for the map file reader: any byte string must either be refused with an
// exception or give a map whose every section can be read and searched, at every SIMD level
// this CPU runs, without going out of bounds (AddressSanitizer) or undefined behaviour
// (UBSan). Each input is parsed in memory and also opened from a file, both read into
// memory and memory-mapped (MapFile::open), the paths a device takes.
// Built and run by scripts/test_fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "vpr/map_file.hpp"
#include "vpr/sequence.hpp"
#include "vpr/simd.hpp"

namespace {

void exercise(const vpr::MapFileView& m) {
  volatile std::size_t sink = 0;
  for (std::size_t i = 0; i < m.count() && i < 64; ++i) sink = sink + m.name(i).size();
  if (m.positions() != nullptr) sink = sink + static_cast<std::size_t>(m.positions()[0] != 0.0);
  if (m.timestamps() != nullptr) sink = sink + static_cast<std::size_t>(m.timestamps()[0] != 0.0);
  // No size cap: inputs are at most -max_len bytes and every section must fit in the file,
  // so count x dim is bounded by the input itself.
  std::vector<float> q(m.input_dim(), 0.0f);
  q[0] = 1.0f;
  for (const vpr::SimdLevel level : vpr::supported_simd_levels()) {
    vpr::force_simd_level(level);
    vpr::SearchOptions opt;
    opt.k = 3;
    opt.num_threads = 1;
    sink = sink + m.search(q.data(), 1, q.size(), opt).ids.size();
    if (m.pq() != nullptr) {  // PQ maps: one IVF list, and a shortlist re-rank if kept
      opt.nprobe = 1;
      opt.shortlist = 4;
      sink = sink + m.search(q.data(), 1, q.size(), opt).ids.size();
      opt.nprobe = 0;
      opt.shortlist = 0;
    }
    if (m.positions() != nullptr) {  // the position prior over the parsed positions
      try {
        const auto near = m.places_near(m.positions()[0], m.positions()[1], 1.0);
        opt.restrict_to_candidates = true;
        opt.candidates = near.data();
        opt.num_candidates = near.size();
        sink = sink + m.search(q.data(), 1, q.size(), opt).ids.size();
        opt.restrict_to_candidates = false;
      } catch (const std::invalid_argument&) {
        // non-finite positions: refused by the grid, as they should be
      }
    }
    if (m.view().storage == vpr::Storage::Pq4) continue;  // no rows: no sequence scores
    vpr::SequenceOptions so;
    so.length = 3;
    so.k = 2;
    vpr::SequenceMatcher seq(m.view(), so, m.projection());
    for (int i = 0; i < 3; ++i) sink = sink + seq.push(q.data(), q.size()).ids.size();
  }
  vpr::reset_simd_level();
}

const std::string& scratch_file() {
  static const std::string path = "/tmp/vpr_fuzz_map_" + std::to_string(::getpid()) + ".vprmap";
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // In memory: the reader needs 8-byte alignment (a mapping is page-aligned): copy.
  std::vector<std::uint64_t> aligned((size + 7) / 8 + 1, 0);
  if (size > 0) std::memcpy(aligned.data(), data, size);
  for (bool verify : {false, true}) {
    vpr::MapOpenOptions opt;
    opt.verify_checksum = verify;
    try {
      exercise(vpr::MapFileView::parse(aligned.data(), size, opt));
    } catch (const std::exception&) {
      // Refusals are the expected outcome for almost every input.
    }
  }
  // From a file: read into memory (under the copy limit) and memory-mapped.
  if (std::FILE* f = std::fopen(scratch_file().c_str(), "wb")) {
    const bool written = size == 0 || std::fwrite(data, 1, size, f) == size;
    std::fclose(f);
    for (std::size_t copy_limit : {vpr::kMapCopyLimitBytes, std::size_t{0}}) {
      if (!written) break;
      vpr::MapOpenOptions opt;
      opt.copy_limit_bytes = copy_limit;
      try {
        const vpr::MapFile file = vpr::MapFile::open(scratch_file(), opt);
        exercise(file.map());
      } catch (const std::exception&) {
      }
    }
  }
  return 0;
}
