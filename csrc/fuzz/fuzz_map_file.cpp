// libFuzzer target for the map file reader: any byte string must either be
// refused with an exception or give a view whose every section can be read
// and searched without going out of bounds (checked by AddressSanitizer).
// Built and run by scripts/test_fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

#include "vpr/map_file.hpp"
#include "vpr/sequence.hpp"

namespace {

void exercise(const vpr::MapFileView& m) {
  volatile std::size_t sink = 0;
  for (std::size_t i = 0; i < m.count() && i < 64; ++i) sink = sink + m.name(i).size();
  if (m.positions() != nullptr) sink = sink + static_cast<std::size_t>(m.positions()[0] != 0.0);
  if (m.timestamps() != nullptr) sink = sink + static_cast<std::size_t>(m.timestamps()[0] != 0.0);
  if (m.count() > 4096 || m.input_dim() > 4096 || m.dim() > 4096) return;  // keep runs fast
  std::vector<float> q(m.input_dim(), 0.0f);
  q[0] = 1.0f;
  vpr::SearchOptions opt;
  opt.k = 3;
  opt.num_threads = 1;
  const auto r = m.search(q.data(), 1, q.size(), opt);
  sink = sink + r.ids.size();
  vpr::SequenceOptions so;
  so.length = 3;
  so.k = 2;
  vpr::SequenceMatcher seq(m.view(), so, m.projection());
  for (int i = 0; i < 3; ++i) sink = sink + seq.push(q.data(), q.size()).ids.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The reader needs 8-byte alignment (a mapping is page-aligned): copy.
  std::vector<std::uint64_t> aligned((size + 7) / 8 + 1, 0);
  if (size > 0) std::memcpy(aligned.data(), data, size);
  for (bool verify : {false, true}) {
    vpr::MapOpenOptions opt;
    opt.verify_checksum = verify;
    try {
      const auto m = vpr::MapFileView::parse(aligned.data(), size, opt);
      exercise(m);
    } catch (const std::exception&) {
      // Refusals are the expected outcome for almost every input.
    }
  }
  return 0;
}
