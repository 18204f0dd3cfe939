// Writing maps on the device: the C++ twin of vpr_embedded/maps.py's writer (format
// version 1, docs/map_format.md), byte for byte, and a recorder that adds frames to a map
// as a robot drives without rewriting the map per frame.
//
// The write follows the one writer specification (docs/design.md): an exclusive flock on
// `.NAME.lock` beside the map from read to rename, a temporary file in the same folder
// (mode 0666 & ~umask, or the old file's mode), fsync of the file and the folder, stale
// temporary files of killed writers removed, and a symlink replaced through to its target.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vpr/map_file.hpp"
#include "vpr/matcher.hpp"

namespace vpr {

// Rows scaled to unit L2 norm, the normalisation every map writer applies (Python's too,
// through this function): the sum of squares in double, in order, then x / norm rounded
// to float. Throws std::invalid_argument for an all-zero or non-finite row.
void normalise_rows(const float* x, std::size_t n, std::size_t d, float* out);

// A version-1 map: encoded rows plus the optional per-place sections.
struct MapContent {
  Storage storage = Storage::Int8;
  std::size_t count = 0;
  std::size_t dim = 0;
  std::vector<std::uint8_t> codes;  // count rows of the storage's bytes
  std::vector<float> scales;        // int8: one per row; else empty
  std::array<std::uint8_t, 32> model_sha256{};
  std::string model_name;          // at most 64 UTF-8 bytes, no NUL
  std::vector<std::string> names;  // empty, or one per place
  std::vector<double> positions;   // empty, or count x 2
  PositionKind position_kind = PositionKind::None;
  std::vector<double> timestamps;  // empty, or one per place

  // Appends L2-normalised float rows, encoded in this map's storage.
  void append_rows(const float* unit_rows, std::size_t n);
};

// The file's bytes (header, sections, padding, CRCs), as maps.py writes them. Throws
// std::invalid_argument for inconsistent content (section sizes, a model name too long).
std::vector<std::uint8_t> serialise_map(const MapContent& content);

// Reads back what serialise_map writes (version 1, no projection): a map to extend.
// Throws std::runtime_error for a map this writer cannot extend (PQ, a projection).
MapContent map_content(const MapFileView& map);

// Writes bytes as `path`, atomically, under the map's lock (see above). `timeout_s`: how
// long to wait for another writer. Throws std::runtime_error naming the path.
void write_map_atomic(const std::string& path, const std::vector<std::uint8_t>& bytes,
                      double timeout_s = 120.0);

// Records frames into a map as they come. Each frame is appended to a journal beside the
// map (`.NAME.journal`: a header naming the model and the map's place count when the
// journal began, then one fixed-size record per frame), and the journal is folded into
// a new map, atomically, every `fold_every` frames and on close(). Positions, when the
// recording has them, go into the map's positions section. A process killed at
// any point loses at most the frame it was writing: the next recorder (or fold_journal)
// folds what the journal holds. Folding twice cannot happen: a journal whose frames the
// map already holds (killed between the rename and the journal's removal) is dropped.
class MapRecorder {
 public:
  struct Options {
    Storage storage = Storage::Int8;  // for a new map; an existing map keeps its own
    std::size_t fold_every = 100;
    // Not None: every frame comes with a position of this kind (an existing map must hold
    // positions of the same kind); None: no frame has one (nor may the map).
    PositionKind position_kind = PositionKind::None;
  };
  // Opens (or will create) the map at `path` for a model; folds a journal left behind.
  MapRecorder(std::string path, const std::array<std::uint8_t, 32>& model_sha256,
              std::string model_name, std::size_t dim, const Options& options);
  ~MapRecorder();  // folds what is left; never throws (call close() to see errors)
  MapRecorder(const MapRecorder&) = delete;
  MapRecorder& operator=(const MapRecorder&) = delete;

  // One frame: its descriptor (dim floats, any norm), time in seconds and name, and its
  // position (x, y; required when Options::position_kind is not None, else ignored).
  // Throws std::invalid_argument for a missing or non-finite position.
  void add(const float* descriptor, double timestamp, const std::string& name,
           const double* position = nullptr);
  // Folds the journal into the map now.
  void fold();
  void close();
  std::size_t places() const { return base_count_ + pending_; }  // in the map + journal

 private:
  void start_journal();
  std::string path_;
  std::string journal_path_;
  std::array<std::uint8_t, 32> sha_;
  std::string model_name_;
  std::size_t dim_;
  Options options_;
  int journal_fd_ = -1;
  std::size_t base_count_ = 0;  // places in the map when the journal began
  std::size_t pending_ = 0;     // records in the journal
  bool closed_ = false;
};

// Folds a journal left by a killed recorder into its map (nothing to do: returns false).
bool fold_journal(const std::string& map_path);

}  // namespace vpr
