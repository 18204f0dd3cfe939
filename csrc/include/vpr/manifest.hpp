// Bundle manifests (manifest.json beside model.pte): the one validator every reader uses,
// C++ (the localizer), Python (vpr_embedded.manifest, through vpr_embedded._core) and
// Android (org.vprembedded.VprManifest, through JNI). The rules are those of
// schemas/bundle-manifest.schema.json; tests/fixtures/manifests holds the shared cases.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace vpr {

// SHA-256 (FIPS 180-4) of a buffer / a file, as 64 lower-case hex digits.
std::string sha256_hex(const void* data, std::size_t size);
std::string sha256_file_hex(const std::string& path);

// The validated fields of a bundle's manifest.json (bundle.py writes it).
struct BundleManifest {
  std::string model_name;
  int height = 0;
  int width = 0;
  bool bgr = false;         // colour order of the model input
  bool rotate_180 = false;  // the pad-free export takes the image upside down
  std::array<float, 3> mean{};
  std::array<float, 3> std{};
  std::size_t descriptor_dim = 0;
  std::string quantization;
  std::string pte_file;
  std::string pte_sha256;
  std::uint64_t pte_bytes = 0;

  // Parses and validates a manifest document; throws std::runtime_error naming
  // `where` and the bad field.
  static BundleManifest parse(const std::string& json_text, const std::string& where);
  // Reads <dir>/manifest.json and checks the .pte's size and sha256.
  static BundleManifest load(const std::string& bundle_dir, bool check_pte = true);
};

}  // namespace vpr
