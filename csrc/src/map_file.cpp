// Map file reader: parse + validate (never trusts a size or offset), CRC-32, mmap.
#include "vpr/map_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "vpr/positions.hpp"

namespace vpr {
namespace {

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float32/float64 expected");

// Header field offsets (docs/map_format.md).
constexpr std::size_t kOffVersion = 8;
constexpr std::size_t kOffHeaderSize = 12;
constexpr std::size_t kOffFileSize = 16;
constexpr std::size_t kOffCount = 24;
constexpr std::size_t kOffDim = 32;
constexpr std::size_t kOffInputDim = 36;
constexpr std::size_t kOffStorage = 40;
constexpr std::size_t kOffPositionKind = 41;
constexpr std::size_t kOffFlags = 42;
constexpr std::size_t kOffPayloadCrc = 44;
constexpr std::size_t kOffHeaderCrc = 48;
constexpr std::size_t kOffReserved0 = 52;
constexpr std::size_t kOffSha256 = 56;
constexpr std::size_t kOffModelName = 88;
constexpr std::size_t kModelNameBytes = 64;
constexpr std::size_t kOffSections = 152;
constexpr std::size_t kOffReserved1 = kOffSections + kMapSectionCountV1 * 16;  // 280
constexpr std::size_t kOffSectionsV2 = kMapHeaderSizeV1;  // slots 8-15 follow the v1 header

const char* const kSectionNames[kMapSectionCount] = {
    "descriptors",     "int8 scales",     "projection",       "projection mean",
    "name offsets",    "name data",       "positions",        "timestamps",
    "PQ info",         "PQ codebooks",    "PQ codes",         "IVF centroids",
    "IVF list blocks", "IVF slot places", "reserved slot 14", "reserved slot 15"};

// Offset of section s's (offset, size) pair in the header.
std::size_t section_slot(std::size_t s) {
  return s < kMapSectionCountV1 ? kOffSections + 16 * s
                                : kOffSectionsV2 + 16 * (s - kMapSectionCountV1);
}

// PQ info section (64 bytes): m, bits, blocks, nlist, nprobe, re-rank storage, zeros.
constexpr std::size_t kPqInfoBytes = 64;
constexpr std::uint8_t kNoRerank = 0xFF;

bool host_is_little_endian() {
  const std::uint16_t one = 1;
  std::uint8_t first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

template <typename T>
T load(const std::uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

[[noreturn]] void corrupt(const std::string& what) {
  throw std::runtime_error("corrupt map: " + what + "; rebuild the map");
}

std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const char* what) {
  std::uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) corrupt(std::string(what) + " size overflows");
  return out;
}

// Slicing-by-4 CRC-32 tables, built once.
struct CrcTables {
  std::uint32_t t[4][256];
  CrcTables() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int b = 0; b < 8; ++b) c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
      t[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 4; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
    }
  }
};

const CrcTables& crc_tables() {
  static const CrcTables tables;
  return tables;
}

}  // namespace

const char* position_kind_name(PositionKind kind) {
  switch (kind) {
    case PositionKind::None:
      return "none";
    case PositionKind::LatLon:
      return "latlon";
    case PositionKind::Utm:
      return "utm";
  }
  return "unknown";
}

std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t crc) {
  const CrcTables& tb = crc_tables();
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint32_t c = ~crc;
  while (size >= 4) {
    c ^= static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
    c = tb.t[3][c & 0xFFu] ^ tb.t[2][(c >> 8) & 0xFFu] ^ tb.t[1][(c >> 16) & 0xFFu] ^
        tb.t[0][c >> 24];
    p += 4;
    size -= 4;
  }
  while (size-- > 0) c = tb.t[0][(c ^ *p++) & 0xFFu] ^ (c >> 8);
  return ~c;
}

MapFileView MapFileView::parse(const void* data, std::size_t size, const MapOpenOptions& options) {
  if (!host_is_little_endian()) {
    throw std::runtime_error("map files are little-endian; this big-endian host cannot read them");
  }
  if (data == nullptr && size > 0) throw std::invalid_argument("map buffer is null");
  if (reinterpret_cast<std::uintptr_t>(data) % 8 != 0) {
    throw std::invalid_argument("a map buffer must be 8-byte aligned");
  }
  const auto* p = static_cast<const std::uint8_t*>(data);
  const std::size_t magic_bytes = sizeof(kMapMagic);
  const std::size_t have = size < magic_bytes ? size : magic_bytes;
  if (have > 0 && std::memcmp(p, kMapMagic, have) != 0) {
    throw std::runtime_error("not a vpr-embedded map (wrong magic bytes)");
  }
  if (size < kOffVersion + 4) {
    throw std::runtime_error("truncated: expected at least " + std::to_string(kMapHeaderSize) +
                             " bytes, file has " + std::to_string(size));
  }
  const std::uint32_t version = load<std::uint32_t>(p + kOffVersion);
  if (version > kMapFormatVersion) {
    throw std::runtime_error(
        "map format version " + std::to_string(version) + " is newer than this build supports (" +
        std::to_string(kMapFormatVersion) + "): rebuild the map or upgrade vpr-embedded");
  }
  if (version == 0) corrupt("map format version 0 is invalid");
  const std::size_t header_bytes = version == 1 ? kMapHeaderSizeV1 : kMapHeaderSizeV2;
  const std::size_t sections = version == 1 ? kMapSectionCountV1 : kMapSectionCount;
  if (size < header_bytes) {
    throw std::runtime_error("truncated: expected at least " + std::to_string(header_bytes) +
                             " bytes, file has " + std::to_string(size));
  }
  const std::uint32_t header_size = load<std::uint32_t>(p + kOffHeaderSize);
  if (header_size != header_bytes) {
    corrupt("header size " + std::to_string(header_size) + ", expected " +
            std::to_string(header_bytes) + " for format version " + std::to_string(version));
  }
  const std::uint64_t file_size = load<std::uint64_t>(p + kOffFileSize);
  if (file_size > size) {
    throw std::runtime_error("truncated: expected " + std::to_string(file_size) +
                             " bytes, file has " + std::to_string(size));
  }
  if (file_size < size) {
    corrupt("size mismatch: the header says " + std::to_string(file_size) +
            " bytes, the file has " + std::to_string(size));
  }
  if (options.verify_checksum) {
    std::uint8_t header[kMapHeaderSizeV2];
    std::memcpy(header, p, header_bytes);
    std::memset(header + kOffHeaderCrc, 0, 4);
    if (crc32(header, header_bytes) != load<std::uint32_t>(p + kOffHeaderCrc)) {
      throw std::runtime_error("header checksum mismatch: the file is corrupt, rebuild it");
    }
  }

  MapFileView m;
  m.base_ = p;
  m.size_ = size;
  m.version_ = version;
  m.payload_crc_ = load<std::uint32_t>(p + kOffPayloadCrc);
  const std::uint64_t count = load<std::uint64_t>(p + kOffCount);
  const std::uint32_t dim = load<std::uint32_t>(p + kOffDim);
  const std::uint32_t input_dim = load<std::uint32_t>(p + kOffInputDim);
  const std::uint8_t storage = p[kOffStorage];
  const std::uint8_t position_kind = p[kOffPositionKind];
  if (storage > static_cast<std::uint8_t>(Storage::Pq4) ||
      (version == 1 && storage == static_cast<std::uint8_t>(Storage::Pq4))) {
    corrupt("unknown storage type " + std::to_string(storage));
  }
  if (position_kind > static_cast<std::uint8_t>(PositionKind::Utm)) {
    corrupt("unknown position kind " + std::to_string(position_kind));
  }
  if (load<std::uint16_t>(p + kOffFlags) != 0 || load<std::uint32_t>(p + kOffReserved0) != 0) {
    corrupt("reserved header fields are not zero");
  }
  for (std::size_t i = kOffReserved1; i < kMapHeaderSize; ++i) {
    if (p[i] != 0) corrupt("reserved header bytes are not zero");
  }
  if (count == 0) corrupt("the map has no places");
  if (dim == 0) corrupt("descriptor dimension is 0");
  if (input_dim == 0) corrupt("model descriptor dimension is 0");
  std::memcpy(m.sha256_.data(), p + kOffSha256, 32);
  const char* name = reinterpret_cast<const char*>(p + kOffModelName);
  std::size_t name_len = 0;
  while (name_len < kModelNameBytes && name[name_len] != '\0') ++name_len;
  for (std::size_t i = name_len; i < kModelNameBytes; ++i) {
    if (name[i] != '\0') corrupt("model name field is not NUL-padded");
  }
  m.model_name_.assign(name, name_len);

  // Section table: each present section is 64-byte aligned, inside the file,
  // after the header and after the previous present section.
  std::uint64_t previous_end = header_bytes;
  for (std::size_t s = 0; s < sections; ++s) {
    const std::uint64_t off = load<std::uint64_t>(p + section_slot(s));
    const std::uint64_t len = load<std::uint64_t>(p + section_slot(s) + 8);
    const std::string what = std::string(kSectionNames[s]) + " section";
    if (len == 0) {
      if (off != 0) corrupt(what + " is empty but has an offset");
      continue;
    }
    if (off % kMapAlignment != 0) corrupt(what + " is not 64-byte aligned");
    if (off < previous_end) corrupt(what + " overlaps the header or the previous section");
    if (off > file_size || len > file_size - off) {
      corrupt(what + " (offset " + std::to_string(off) + ", " + std::to_string(len) +
              " bytes) lies outside the file of " + std::to_string(file_size) + " bytes");
    }
    previous_end = off + len;
    m.offsets_[s] = off;
    m.sizes_[s] = len;
  }
  auto expect = [&](MapSection s, std::uint64_t bytes, bool required) {
    const auto i = static_cast<std::size_t>(s);
    if (m.sizes_[i] == 0) {
      if (required && bytes > 0) corrupt(std::string(kSectionNames[i]) + " section is missing");
      return false;
    }
    if (m.sizes_[i] != bytes) {
      corrupt(std::string(kSectionNames[i]) + " section has " + std::to_string(m.sizes_[i]) +
              " bytes, expected " + std::to_string(bytes));
    }
    return true;
  };
  auto at = [&](MapSection s) { return p + m.offsets_[static_cast<std::size_t>(s)]; };

  for (std::size_t s = kMapSectionCount - 2; s < kMapSectionCount; ++s) {
    if (m.sizes_[s] != 0) corrupt(std::string(kSectionNames[s]) + " is not empty");
  }
  m.storage_ = static_cast<Storage>(storage);
  m.db_.storage = m.storage_;
  m.db_.dim = dim;
  m.db_.count = static_cast<std::size_t>(count);
  if (count > static_cast<std::uint64_t>(SIZE_MAX)) corrupt("place count too large");
  if (m.storage_ == Storage::Pq4) {
    m.parse_pq();
  } else {
    for (std::size_t s = static_cast<std::size_t>(MapSection::PqInfo); s < kMapSectionCount; ++s) {
      if (m.sizes_[s] != 0) corrupt(std::string(kSectionNames[s]) + " section in a non-PQ map");
    }
  }
  const bool exact_codes = m.db_.storage != Storage::Pq4;
  if (exact_codes) {
    const std::uint64_t row_bytes = m.db_.row_bytes();
    expect(MapSection::Descriptors, checked_mul(count, row_bytes, "descriptor"), true);
    m.db_.codes = at(MapSection::Descriptors);
  } else if (m.sizes_[static_cast<std::size_t>(MapSection::Descriptors)] != 0) {
    corrupt("a PQ map without re-rank codes has a descriptors section");
  }
  const bool is_int8 = m.db_.storage == Storage::Int8;
  if (is_int8) {
    expect(MapSection::Scales, checked_mul(count, 4, "scale"), true);
    m.db_.scales = reinterpret_cast<const float*>(at(MapSection::Scales));
    for (std::size_t i = 0; i < count; ++i) {
      const float sc = m.db_.scales[i];
      if (!std::isfinite(sc) || sc < 0.0f) corrupt("int8 scale of place " + std::to_string(i));
    }
  } else if (m.sizes_[static_cast<std::size_t>(MapSection::Scales)] != 0) {
    corrupt("only int8 maps have a scales section");
  }

  const std::uint64_t proj_bytes =
      checked_mul(checked_mul(input_dim, dim, "projection"), 4, "projection");
  if (expect(MapSection::Projection, proj_bytes, false)) {
    m.projection_.matrix = reinterpret_cast<const float*>(at(MapSection::Projection));
    m.projection_.in_dim = input_dim;
    m.projection_.out_dim = dim;
    for (std::uint64_t i = 0; i < proj_bytes / 4; ++i) {
      if (!std::isfinite(m.projection_.matrix[i])) corrupt("non-finite projection value");
    }
    if (expect(MapSection::Mean, std::uint64_t{input_dim} * 4, false)) {
      m.projection_.mean = reinterpret_cast<const float*>(at(MapSection::Mean));
      for (std::size_t i = 0; i < input_dim; ++i) {
        if (!std::isfinite(m.projection_.mean[i])) corrupt("non-finite projection mean value");
      }
    }
  } else {
    if (m.sizes_[static_cast<std::size_t>(MapSection::Mean)] != 0) {
      corrupt("a projection mean without a projection");
    }
    if (input_dim != dim) {
      corrupt("model descriptor dimension " + std::to_string(input_dim) +
              " differs from the map's " + std::to_string(dim) + " without a projection");
    }
  }
  m.input_dim_ = input_dim;

  const std::uint64_t count1 =
      count + 1;  // count <= SIZE_MAX checked; count1 may wrap only at 2^64
  if (count1 == 0) corrupt("place count too large");
  if (expect(MapSection::NameOffsets, checked_mul(count1, 4, "name offset"), false)) {
    m.name_offsets_ = reinterpret_cast<const std::uint32_t*>(at(MapSection::NameOffsets));
    const std::uint64_t data_len = m.sizes_[static_cast<std::size_t>(MapSection::NameData)];
    if (m.name_offsets_[0] != 0) corrupt("the first name offset is not 0");
    for (std::size_t i = 0; i < count; ++i) {
      if (m.name_offsets_[i + 1] < m.name_offsets_[i]) corrupt("name offsets decrease");
    }
    if (m.name_offsets_[count] != data_len) {
      corrupt("name data has " + std::to_string(data_len) + " bytes, the offsets say " +
              std::to_string(m.name_offsets_[count]));
    }
    m.name_data_ = reinterpret_cast<const char*>(at(MapSection::NameData));
    m.name_data_size_ = static_cast<std::size_t>(data_len);
  } else if (m.sizes_[static_cast<std::size_t>(MapSection::NameData)] != 0) {
    corrupt("name data without name offsets");
  }

  m.position_kind_ = static_cast<PositionKind>(position_kind);
  const bool has_positions = m.sizes_[static_cast<std::size_t>(MapSection::Positions)] != 0;
  if (has_positions != (m.position_kind_ != PositionKind::None)) {
    corrupt("position kind and positions section disagree");
  }
  if (expect(MapSection::Positions, checked_mul(count, 16, "position"), false)) {
    m.positions_ = reinterpret_cast<const double*>(at(MapSection::Positions));
  }
  if (expect(MapSection::Timestamps, checked_mul(count, 8, "timestamp"), false)) {
    m.timestamps_ = reinterpret_cast<const double*>(at(MapSection::Timestamps));
  }

  if (options.verify_checksum) {
    if (crc32(p + header_bytes, size - header_bytes) != m.payload_crc_) {
      throw std::runtime_error("checksum mismatch: the file is corrupt, rebuild it");
    }
    // A file whose CRC matches can still hold values no search may use (written by a
    // buggy or hostile writer): NaN codes would give NaN scores and unsorted results.
    try {
      if (exact_codes) m.db_.check_values();
      if (m.storage_ == Storage::Pq4) m.pq_.check_values();
    } catch (const std::invalid_argument& e) {
      corrupt(e.what());
    }
  }
  if (exact_codes) m.db_.validate();
  if (m.storage_ == Storage::Pq4) m.pq_.validate();
  if (m.positions_ != nullptr) m.grid_ = std::make_shared<LazyGrid>();
  return m;
}

void MapFileView::parse_pq() {
  auto size_of = [&](MapSection s) { return sizes_[static_cast<std::size_t>(s)]; };
  auto at = [&](MapSection s) { return base_ + offsets_[static_cast<std::size_t>(s)]; };
  auto expect = [&](MapSection s, std::uint64_t bytes) {
    const auto i = static_cast<std::size_t>(s);
    if (sizes_[i] != bytes) {
      corrupt(std::string(kSectionNames[i]) + " section has " + std::to_string(sizes_[i]) +
              " bytes, expected " + std::to_string(bytes));
    }
  };
  expect(MapSection::PqInfo, kPqInfoBytes);
  const std::uint8_t* info = at(MapSection::PqInfo);
  const std::uint32_t sub = load<std::uint32_t>(info);
  const std::uint32_t bits = load<std::uint32_t>(info + 4);
  const std::uint64_t blocks = load<std::uint64_t>(info + 8);
  const std::uint32_t nlist = load<std::uint32_t>(info + 16);
  const std::uint32_t nprobe = load<std::uint32_t>(info + 20);
  const std::uint8_t rerank = info[24];
  for (std::size_t i = 25; i < kPqInfoBytes; ++i) {
    if (info[i] != 0) corrupt("reserved PQ info bytes are not zero");
  }
  if (bits != 4) corrupt("PQ codes of " + std::to_string(bits) + " bits (this build reads 4)");
  if (sub < 2 || sub > kPqMaxM || sub % 2 != 0 || db_.dim % sub != 0) {
    corrupt("PQ sub-quantizer count " + std::to_string(sub) + " for dimension " +
            std::to_string(db_.dim));
  }
  const std::uint64_t min_blocks = (db_.count + kPqBlock - 1) / kPqBlock;
  if (nlist == 0 ? blocks != min_blocks : (blocks < min_blocks || blocks > min_blocks + nlist)) {
    corrupt("PQ block count " + std::to_string(blocks) + " for " + std::to_string(db_.count) +
            " places");
  }
  if (nprobe > nlist) corrupt("default nprobe above the list count");
  if (rerank != kNoRerank && rerank > static_cast<std::uint8_t>(Storage::Int8)) {
    corrupt("re-rank storage " + std::to_string(rerank));
  }
  expect(MapSection::PqCodebooks, checked_mul(db_.dim, kPqCentroids * 4, "PQ codebook"));
  expect(MapSection::PqCodes, checked_mul(blocks, std::uint64_t{sub} * 16, "PQ code"));
  pq_.count = db_.count;
  pq_.dim = db_.dim;
  pq_.m = sub;
  pq_.blocks = static_cast<std::size_t>(blocks);
  pq_.codebooks = reinterpret_cast<const float*>(at(MapSection::PqCodebooks));
  pq_.codes = at(MapSection::PqCodes);
  // Small (16 x dim values): checked on every open, with or without checksum verification.
  for (std::size_t i = 0; i < kPqCentroids * db_.dim; ++i) {
    if (!std::isfinite(pq_.codebooks[i])) corrupt("non-finite PQ codebook value");
  }
  if (nlist > 0) {
    expect(MapSection::IvfCentroids, checked_mul(std::uint64_t{nlist} * 4, db_.dim, "IVF"));
    expect(MapSection::IvfListBlocks, (std::uint64_t{nlist} + 1) * 8);
    expect(MapSection::IvfSlotPlaces, checked_mul(blocks, kPqBlock * 4, "IVF slot"));
    pq_.ivf.nlist = nlist;
    pq_.ivf.centroids = reinterpret_cast<const float*>(at(MapSection::IvfCentroids));
    pq_.ivf.list_blocks = reinterpret_cast<const std::uint64_t*>(at(MapSection::IvfListBlocks));
    pq_.slot_places = reinterpret_cast<const std::uint32_t*>(at(MapSection::IvfSlotPlaces));
    for (std::size_t i = 0; i < std::size_t{nlist} * db_.dim; ++i) {
      if (!std::isfinite(pq_.ivf.centroids[i])) corrupt("non-finite IVF centroid value");
    }
    // The slot of every place (the position prior scores places by id); building it
    // also proves that every place has exactly one slot.
    try {
      place_slots_ = std::make_shared<const std::vector<std::uint32_t>>(
          invert_slots(pq_.slot_places, pq_.blocks * kPqBlock, pq_.count));
    } catch (const std::invalid_argument& e) {
      corrupt(e.what());
    }
    pq_.place_slots = place_slots_->data();
    const std::uint64_t* lb = pq_.ivf.list_blocks;
    if (lb[0] != 0 || lb[nlist] != blocks) corrupt("IVF lists do not cover the PQ blocks");
    for (std::size_t l = 0; l < nlist; ++l) {
      if (lb[l + 1] < lb[l]) corrupt("IVF list offsets decrease");
    }
  } else {
    for (MapSection s :
         {MapSection::IvfCentroids, MapSection::IvfListBlocks, MapSection::IvfSlotPlaces}) {
      if (size_of(s) != 0)
        corrupt(std::string(kSectionNames[static_cast<int>(s)]) + " section without IVF lists");
    }
  }
  default_nprobe_ = nprobe;
  db_.storage = rerank == kNoRerank ? Storage::Pq4 : static_cast<Storage>(rerank);
}

struct MapFileView::LazyGrid {
  std::once_flag once;
  std::unique_ptr<PositionGrid> grid;
};

std::vector<std::uint32_t> MapFileView::places_near(double x, double y, double radius) const {
  if (positions_ == nullptr || grid_ == nullptr) {
    throw std::invalid_argument(
        "this map has no positions: a position prior needs a map built with positions");
  }
  std::call_once(grid_->once, [&] {
    grid_->grid = std::make_unique<PositionGrid>(positions_, db_.count, position_kind_);
  });
  return grid_->grid->within(x, y, radius);
}

std::string MapFileView::model_sha256_hex() const {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (std::uint8_t b : sha256_) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

std::string_view MapFileView::name(std::size_t i) const {
  if (i >= db_.count) {
    throw std::out_of_range("place " + std::to_string(i) + " out of range (the map has " +
                            std::to_string(db_.count) + " places)");
  }
  if (name_offsets_ == nullptr) return {};
  const std::uint32_t begin = name_offsets_[i];
  const std::uint32_t end = name_offsets_[i + 1];
  if (begin > end || end > name_data_size_) corrupt("name offsets");  // validated at parse
  return std::string_view(name_data_ + begin, end - begin);
}

const std::uint8_t* MapFileView::section(MapSection s, std::size_t* size) const {
  const auto i = static_cast<std::size_t>(s);
  if (i >= kMapSectionCount) throw std::out_of_range("unknown map section");
  if (size != nullptr) *size = static_cast<std::size_t>(sizes_[i]);
  return sizes_[i] == 0 ? nullptr : base_ + offsets_[i];
}

SearchResults MapFileView::search(const float* queries, std::size_t num_queries,
                                  std::size_t query_dim, SearchOptions options) const {
  if (query_dim != input_dim_) {
    throw std::invalid_argument(
        "queries have dimension " + std::to_string(query_dim) + ", but this map was built for " +
        (model_name_.empty() ? std::string("a model") : "model '" + model_name_ + "'") +
        " with descriptor dimension " + std::to_string(input_dim_));
  }
  options.projection = projection_;
  if (storage_ == Storage::Pq4) {
    if (options.nprobe == 0) options.nprobe = default_nprobe_;
    if (has_rerank_codes()) {
      options.rerank = &db_;
      if (options.shortlist == 0) options.shortlist = kPqDefaultShortlist;
    } else {
      options.rerank = nullptr;
    }
    return search_pq(pq_, queries, num_queries, query_dim, options);
  }
  return vpr::search(db_, queries, num_queries, query_dim, options);
}

namespace {

// Reads a whole regular file into 64-byte aligned memory (the alignment the map's
// sections have in the file, so zero-copy views work the same as on a mapping).
void* read_whole(int fd, std::size_t size) {
  void* mem = nullptr;
  if (::posix_memalign(&mem, kMapAlignment, size) != 0) throw std::bad_alloc();
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got =
        ::pread(fd, static_cast<char*>(mem) + done, size - done, static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const int err = got < 0 ? errno : 0;
      std::free(mem);
      throw std::runtime_error(err != 0 ? std::string("cannot read: ") + std::strerror(err)
                                        : "the file shrank while it was read");
    }
    done += static_cast<std::size_t>(got);
  }
  return mem;
}

}  // namespace

MapFile MapFile::open(const std::string& path, const MapOpenOptions& options) {
  MapFile f;
  f.path_ = path;
  // O_NONBLOCK: opening a FIFO (or a device) for reading must not wait for a writer; the
  // file type is checked right after, and regular files ignore the flag.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    throw std::runtime_error("cannot open map " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error("cannot stat map " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(path + " is not a regular file (a map is a .vprmap file)");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  try {
    if (size == 0) {
      ::close(fd);
      MapFileView::parse(nullptr, 0, options);  // throws "truncated"
    }
    if (size <= options.copy_limit_bytes) {
      try {
        f.copy_ = read_whole(fd, size);
      } catch (...) {
        ::close(fd);
        throw;
      }
      ::close(fd);
      f.view_ = MapFileView::parse(f.copy_, size, options);
      return f;
    }
    void* mem = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    if (mem == MAP_FAILED) {
      throw std::runtime_error(std::string("cannot memory-map: ") + std::strerror(err));
    }
    f.mapping_ = mem;
    f.mapping_size_ = size;
    f.view_ = MapFileView::parse(mem, size, options);
  } catch (const std::bad_alloc&) {
    throw std::runtime_error(path + ": not enough memory to read the map (" + std::to_string(size) +
                             " bytes)");
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return f;
}

MapFile::MapFile(MapFile&& other) noexcept { *this = std::move(other); }

MapFile& MapFile::operator=(MapFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_size_ = std::exchange(other.mapping_size_, 0);
    copy_ = std::exchange(other.copy_, nullptr);
    view_ = other.view_;
    other.view_ = MapFileView();
  }
  return *this;
}

MapFile::~MapFile() { release(); }

void MapFile::release() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
  std::free(copy_);
  mapping_ = nullptr;
  mapping_size_ = 0;
  copy_ = nullptr;
}

}  // namespace vpr
