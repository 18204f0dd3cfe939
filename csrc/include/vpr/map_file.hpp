// Map files (.vprmap): one versioned, checksummed binary file holding an encoded
// database, its optional projection, per-place names, positions and timestamps.
// The layout is documented in docs/map_format.md; vpr_embedded/maps.py writes it.
//
// MapFile memory-maps a file read-only and validates every size and offset
// (overflow-safe) before anything is used; the descriptor section is 64-byte
// aligned, so view() is a zero-copy DatabaseView usable by vpr::search.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vpr/matcher.hpp"
#include "vpr/pq.hpp"

namespace vpr {

// Version 2 adds sections 8-15 (PQ codes and the coarse index) in a longer header.
// Writers write version 1 unless a map uses a version-2 section, so older readers still
// open every map they can use; a version-1 reader refuses a version-2 map with "newer
// than this build supports".
inline constexpr std::uint32_t kMapFormatVersion = 2;
inline constexpr std::size_t kMapHeaderSizeV1 = 320;
inline constexpr std::size_t kMapHeaderSizeV2 = 448;
inline constexpr std::size_t kMapHeaderSize = kMapHeaderSizeV1;  // the common prefix
inline constexpr std::size_t kMapAlignment = 64;
inline constexpr char kMapMagic[8] = {'V', 'P', 'R', 'M', 'A', 'P', '\r', '\n'};

enum class PositionKind : std::uint8_t { None = 0, LatLon = 1, Utm = 2 };
const char* position_kind_name(PositionKind kind);

// Sections in file order; each has an (offset, size) pair in the header.
enum class MapSection : std::uint8_t {
  Descriptors = 0,  // count x row_bytes, 64-byte aligned
  Scales = 1,       // int8 only: count float32
  Projection = 2,   // optional: in_dim x dim float32, row-major
  Mean = 3,         // optional: in_dim float32 (only with a projection)
  NameOffsets = 4,  // optional: (count + 1) uint32, first 0, non-decreasing
  NameData = 5,     // optional: UTF-8 bytes of all names, concatenated
  Positions = 6,    // optional: count x 2 float64
  Timestamps = 7,   // optional: count float64 (seconds)
  // Version 2. A pq4 map's Descriptors/Scales hold its optional re-rank codes.
  PqInfo = 8,          // pq4: 64 bytes (sub-quantizers, blocks, lists, re-rank, nprobe)
  PqCodebooks = 9,     // pq4: m x 16 x (dim / m) float32
  PqCodes = 10,        // pq4: blocks x m x 16 bytes (vpr/pq.hpp block layout)
  IvfCentroids = 11,   // pq4 with IVF: nlist x dim float32
  IvfListBlocks = 12,  // pq4 with IVF: (nlist + 1) uint64, first 0, last = blocks
  IvfSlotPlaces = 13,  // pq4 with IVF: blocks x 32 uint32 (0xFFFFFFFF: padding)
};
inline constexpr std::size_t kMapSectionCountV1 = 8;
inline constexpr std::size_t kMapSectionCount = 16;  // slots in a version-2 header

// Re-rank shortlist of a pq4 map with re-rank codes when the caller gives none.
inline constexpr std::size_t kPqDefaultShortlist = 100;

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's crc32):
// crc32(data, n, crc32(prefix...)) continues a running checksum; start at 0.
std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t crc = 0);

// Maps up to this size are read into private memory instead of being memory-mapped.
inline constexpr std::size_t kMapCopyLimitBytes = std::size_t{64} << 20;

struct MapOpenOptions {
  // Verify the header and payload CRC-32 (reads the whole file once) and the
  // int8 codes' range. Structural checks (sizes, offsets) are always done.
  bool verify_checksum = true;
  // A map of at most this many bytes is read into memory the reader owns, so a writer
  // that overwrites the file in place (`cp new.vprmap map.vprmap` reuses the inode) cannot
  // change or truncate what the reader sees: with a shared mapping the reader would die of
  // SIGBUS. Larger maps are memory-mapped (MAP_SHARED): replace them (write a new file,
  // rename it over the old one; every vpr-embedded writer does), never overwrite them in
  // place. 0: always map; SIZE_MAX: always copy.
  std::size_t copy_limit_bytes = kMapCopyLimitBytes;
};

// Parsed, validated, non-owning view of a map held in memory (a mapping or a buffer).
class MapFileView {
 public:
  // Validates `size` bytes at `data`; throws std::runtime_error with a clear
  // message for a foreign, truncated, corrupt or newer file. `data` must stay
  // valid (and be 8-byte aligned for zero-copy use) while the view is used.
  static MapFileView parse(const void* data, std::size_t size, const MapOpenOptions& options = {});

  std::uint32_t format_version() const { return version_; }
  std::size_t file_size() const { return size_; }
  // Pq4 for a PQ map (its re-rank codes, if any, have rerank_storage()).
  Storage storage() const { return storage_; }
  std::size_t count() const { return db_.count; }
  std::size_t dim() const { return db_.dim; }
  // Dimension of the queries (the model's descriptor dimension): the
  // projection's input dimension, or dim() without a projection.
  std::size_t input_dim() const { return input_dim_; }
  const std::array<std::uint8_t, 32>& model_sha256() const { return sha256_; }
  std::string model_sha256_hex() const;
  const std::string& model_name() const { return model_name_; }
  std::uint32_t checksum() const { return payload_crc_; }

  // Zero-copy database view (codes and int8 scales point into the file). A pq4 map's
  // view holds its re-rank codes, or has storage Pq4 (searches refuse it) without them.
  const DatabaseView& view() const { return db_; }
  // PQ codes and coarse index (nullptr unless storage() is Pq4).
  const PqView* pq() const { return storage_ == Storage::Pq4 ? &pq_ : nullptr; }
  bool has_rerank_codes() const { return storage_ == Storage::Pq4 && db_.storage != Storage::Pq4; }
  // IVF lists a search scans unless SearchOptions::nprobe says otherwise (0: all).
  std::size_t default_nprobe() const { return default_nprobe_; }
  // Sorted ids of the places stored within `radius` of (x, y): see vpr/positions.hpp for
  // units. Throws std::invalid_argument for a map without positions. The grid is built
  // on first use (thread-safe) and shared by copies of this view.
  std::vector<std::uint32_t> places_near(double x, double y, double radius) const;
  // Projection to apply to queries (disabled if the map has none).
  const Projection& projection() const { return projection_; }

  bool has_names() const { return name_offsets_ != nullptr; }
  // Name of place i (empty view without names); throws std::out_of_range.
  std::string_view name(std::size_t i) const;
  PositionKind position_kind() const { return position_kind_; }
  const double* positions() const { return positions_; }    // count x 2, or nullptr
  const double* timestamps() const { return timestamps_; }  // count, or nullptr
  // Raw bytes of a section (nullptr, 0 if absent).
  const std::uint8_t* section(MapSection s, std::size_t* size) const;

  // Search with the stored projection applied to the queries. A pq4 map scans its PQ
  // codes (options.nprobe 0: default_nprobe()) and, when it keeps re-rank codes and
  // options.shortlist is 0, re-ranks a shortlist of kPqDefaultShortlist places exactly.
  SearchResults search(const float* queries, std::size_t num_queries, std::size_t query_dim,
                       SearchOptions options) const;

 private:
  void parse_pq();
  const std::uint8_t* base_ = nullptr;
  std::size_t size_ = 0;
  std::uint32_t version_ = 0;
  std::size_t input_dim_ = 0;
  std::array<std::uint8_t, 32> sha256_{};
  std::string model_name_;
  std::uint32_t payload_crc_ = 0;
  DatabaseView db_;
  Projection projection_;
  const std::uint32_t* name_offsets_ = nullptr;
  const char* name_data_ = nullptr;
  std::size_t name_data_size_ = 0;
  PositionKind position_kind_ = PositionKind::None;
  const double* positions_ = nullptr;
  const double* timestamps_ = nullptr;
  Storage storage_ = Storage::Float32;
  PqView pq_;
  std::size_t default_nprobe_ = 0;
  std::shared_ptr<const std::vector<std::uint32_t>> place_slots_;
  struct LazyGrid;
  std::shared_ptr<LazyGrid> grid_;
  std::array<std::uint64_t, kMapSectionCount> offsets_{};
  std::array<std::uint64_t, kMapSectionCount> sizes_{};
};

// A map file memory-mapped read-only (POSIX mmap); unmapped on destruction.
class MapFile {
 public:
  // Throws std::runtime_error (the path in the message) for a missing,
  // unreadable or invalid file.
  static MapFile open(const std::string& path, const MapOpenOptions& options = {});

  MapFile() = default;
  MapFile(MapFile&& other) noexcept;
  MapFile& operator=(MapFile&& other) noexcept;
  MapFile(const MapFile&) = delete;
  MapFile& operator=(const MapFile&) = delete;
  ~MapFile();

  const MapFileView& map() const { return view_; }
  const DatabaseView& view() const { return view_.view(); }
  const std::string& path() const { return path_; }
  // True when the file is memory-mapped, false when it was read into owned memory.
  bool memory_mapped() const { return mapping_ != nullptr; }

 private:
  void release();
  std::string path_;
  void* mapping_ = nullptr;
  std::size_t mapping_size_ = 0;
  void* copy_ = nullptr;  // 64-byte aligned owned bytes (maps under copy_limit_bytes)
  MapFileView view_;
};

}  // namespace vpr
