// On-device localizer: runs a model bundle (ExecuTorch .pte + manifest.json) on an
// RGB8 frame and matches the descriptor against a map with vpr_core.
//
// Preprocessing is vpr_core's (vpr/preprocess.hpp), the same the JNI library runs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vpr/manifest.hpp"
#include "vpr/map_file.hpp"
#include "vpr/preprocess.hpp"
#include "vpr/sequence.hpp"

namespace vpr {

struct FrameTiming {
  double preprocess_ms = 0.0;
  double inference_ms = 0.0;
  double match_ms = 0.0;
};

// The ExecuTorch runtime logs its CPU probe and thread-pool notices at info level on
// every start. By default this library drops its info and debug lines and prints errors;
// set_runtime_verbose(true) prints everything (vpr-localize --verbose).
void set_runtime_verbose(bool verbose);

// Runs a bundle's model. threads >= 1 sizes the XNNPACK thread pool (shared by the
// process); 0 keeps the current size.
class Extractor {
 public:
  explicit Extractor(const std::string& bundle_dir, int threads = 1);
  ~Extractor();
  Extractor(const Extractor&) = delete;
  Extractor& operator=(const Extractor&) = delete;

  const BundleManifest& manifest() const { return manifest_; }
  std::size_t descriptor_dim() const { return manifest_.descriptor_dim; }
  // Preprocessed (3, H, W) float32 input -> descriptor (descriptor_dim floats).
  void embed_preprocessed(const float* chw, float* descriptor);
  // RGB8 frame -> descriptor.
  std::vector<float> embed(const ImageView& image, FrameTiming* timing = nullptr);

 private:
  struct Impl;
  BundleManifest manifest_;
  std::unique_ptr<Impl> impl_;
  std::vector<float> input_;
};

struct LocalizerOptions {
  int threads = 1;    // XNNPACK and matching threads
  std::size_t k = 5;  // results per frame
  bool verify_map_checksum = true;
  bool allow_model_mismatch = false;  // accept a map built with another model
  // > 1: also match over the last `sequence` frames (SequenceOptions' other defaults,
  // which are vpr_embedded.sequence.SequenceConfig's); match_sequence() then works.
  std::size_t sequence = 0;
  // Places the sequence scores are contrast-normalised over. 20, not SeqSLAM's 10: chosen on
  // nordland_part1's val segment with the GeM zoo model (sequence R@1 0.822 at 10, 0.903 at
  // 20; docs/training.md), the default of vpr_embedded's DEFAULT_SEQUENCE_WINDOW too.
  std::size_t sequence_window = 20;
};

struct PlaceMatch {
  std::int64_t id = 0;
  float score = 0.0F;
  std::string name;  // empty if the map has no names
  bool has_position = false;
  double x = 0.0, y = 0.0;  // the map's stored position (lat/lon or easting/northing)
};

// Bundle + map: RGB8 frame -> top-k places.
class Localizer {
 public:
  Localizer(const std::string& bundle_dir, const std::string& map_path,
            const LocalizerOptions& options = {});
  Localizer(const Localizer&) = delete;  // the sequence matcher views map_
  Localizer& operator=(const Localizer&) = delete;
  std::vector<PlaceMatch> localize(const ImageView& image, FrameTiming* timing = nullptr);
  // Top-k of an already computed descriptor.
  std::vector<PlaceMatch> match(const float* descriptor);
  // Adds the descriptor as the next frame of the sequence and returns the top-k places by
  // sequence score (options.sequence > 1; throws std::logic_error otherwise).
  std::vector<PlaceMatch> match_sequence(const float* descriptor);
  Extractor& extractor() { return extractor_; }
  const MapFile& map() const { return map_; }
  const LocalizerOptions& options() const { return options_; }

 private:
  std::vector<PlaceMatch> places(const SearchResults& r) const;
  LocalizerOptions options_;
  Extractor extractor_;
  MapFile map_;
  std::unique_ptr<SequenceMatcher> sequence_;
};

}  // namespace vpr
