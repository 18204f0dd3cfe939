// libFuzzer target for the bundle manifest reader (csrc/src/manifest.cpp): any text
// must be refused with std::runtime_error or give a manifest whose fields hold the
// validated ranges. Built and run by scripts/test_fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "vpr/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const vpr::BundleManifest m = vpr::BundleManifest::parse(text, "fuzz");
    // What every runtime relies on once a manifest is accepted.
    if (m.height <= 0 || m.width <= 0 || m.height > 8192 || m.width > 8192) std::abort();
    if (m.descriptor_dim == 0 || m.pte_sha256.size() != 64 || m.pte_file.empty()) std::abort();
    for (float s : m.std) {
      if (!(s > 0.0f)) std::abort();
    }
  } catch (const std::runtime_error&) {
    // Refused: the expected outcome for almost every input.
  }
  return 0;
}
