#include "vpr/map_writer.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <thread>

namespace vpr {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'V', 'P', 'R', 'M', 'A', 'P', '\r', '\n'};
constexpr std::size_t kModelNameBytes = 64;

template <typename T>
void put(std::vector<std::uint8_t>& out, std::size_t at, T value) {
  // Little-endian on every target we build for (x86_64, aarch64): a plain copy.
  std::memcpy(out.data() + at, &value, sizeof(T));
}

std::string errno_text() { return std::strerror(errno); }

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

void write_all(int fd, const std::uint8_t* data, std::size_t size, const std::string& what) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot write " + what + ": " + errno_text());
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

fs::path folder_of(const fs::path& file) {
  return file.has_parent_path() ? file.parent_path() : fs::path(".");
}

// The file a write of `path` replaces: a symlink's target, so the link stays.
std::string map_target(const std::string& path) {
  std::error_code ec;
  if (fs::is_symlink(path, ec)) {
    const fs::path target = fs::canonical(path, ec);
    if (!ec) return target.string();
  }
  return path;
}

// Holds the exclusive flock of `.NAME.lock` (a killed writer releases it), and removes
// stale temporary files once it holds it (no other writer runs then).
class WriteLock {
 public:
  WriteLock(const std::string& target, double timeout_s) {
    const fs::path t(target);
    const fs::path folder = folder_of(t);
    std::error_code ec;
    fs::create_directories(folder, ec);
    const std::string lock = (folder / ("." + t.filename().string() + ".lock")).string();
    fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) throw std::runtime_error("cannot create the lock " + lock + ": " + errno_text());
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        const std::string why = errno_text();
        ::close(fd_);
        throw std::runtime_error("cannot lock " + lock + ": " + why);
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::close(fd_);
        throw std::runtime_error(target + ": another process has been writing this map for " +
                                 "too long (lock " + lock + "); wait for it to finish, then retry");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const std::string prefix = "." + t.filename().string() + ".";
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.size() > prefix.size() + 4 && name.rfind(prefix, 0) == 0 &&
          name.compare(name.size() - 4, 4, ".tmp") == 0) {
        fs::remove(entry.path(), ec);
      }
    }
  }
  ~WriteLock() { ::close(fd_); }
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;

 private:
  int fd_ = -1;
};

void write_atomic_locked(const std::string& target, const std::vector<std::uint8_t>& bytes) {
  const fs::path t(target);
  const fs::path folder = folder_of(t);
  struct stat old {};
  const bool replacing = ::stat(target.c_str(), &old) == 0;
  std::random_device rd;
  char suffix[17];
  std::snprintf(suffix, sizeof(suffix), "%08x%08x", rd(), rd());
  const std::string tmp = (folder / ("." + t.filename().string() + "." + suffix + ".tmp")).string();
  {
    // O_EXCL on a random name: never another file; 0666 lets the kernel apply the umask.
    Fd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    if (f.fd < 0) throw std::runtime_error("cannot create " + tmp + ": " + errno_text());
    try {
      if (replacing && ::fchmod(f.fd, old.st_mode & 07777) != 0) {
        throw std::runtime_error("cannot keep the mode of " + target + ": " + errno_text());
      }
      write_all(f.fd, bytes.data(), bytes.size(), tmp);
      if (::fsync(f.fd) != 0) throw std::runtime_error("cannot fsync " + tmp + ": " + errno_text());
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot replace " + target + ": " + why);
  }
  Fd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.fd >= 0) ::fsync(dir.fd);
}

std::size_t row_bytes(Storage storage, std::size_t dim) {
  DatabaseView v;
  v.storage = storage;
  v.dim = dim;
  return v.row_bytes();
}

}  // namespace

void normalise_rows(const float* x, std::size_t n, std::size_t d, float* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    double sum = 0.0;
    for (std::size_t j = 0; j < d; ++j) sum += static_cast<double>(row[j]) * row[j];
    if (!std::isfinite(sum)) {
      throw std::invalid_argument("row " + std::to_string(i) +
                                  " has a non-finite value (NaN or inf)");
    }
    if (sum == 0.0) throw std::invalid_argument("row " + std::to_string(i) + " is all zeros");
    const double norm = std::sqrt(sum);
    for (std::size_t j = 0; j < d; ++j) {
      out[i * d + j] = static_cast<float>(static_cast<double>(row[j]) / norm);
    }
  }
}

void MapContent::append_rows(const float* unit_rows, std::size_t n) {
  if (n == 0) return;
  const Database db = Database::encode(unit_rows, n, dim, storage);
  codes.insert(codes.end(), db.codes().begin(), db.codes().end());
  scales.insert(scales.end(), db.scales().begin(), db.scales().end());
  count += n;
}

std::vector<std::uint8_t> serialise_map(const MapContent& c) {
  if (c.storage == Storage::Pq4) {
    throw std::invalid_argument("this writer writes version-1 maps; pq4 maps come from Python");
  }
  if (c.codes.size() != c.count * row_bytes(c.storage, c.dim) ||
      c.scales.size() != (c.storage == Storage::Int8 ? c.count : 0) ||
      (!c.names.empty() && c.names.size() != c.count) ||
      (!c.positions.empty() && c.positions.size() != 2 * c.count) ||
      (!c.timestamps.empty() && c.timestamps.size() != c.count) ||
      (c.positions.empty() != (c.position_kind == PositionKind::None))) {
    throw std::invalid_argument("map content: a section's size does not fit count and dim");
  }
  if (c.model_name.size() > kModelNameBytes || c.model_name.find('\0') != std::string::npos) {
    throw std::invalid_argument("model name must be at most 64 UTF-8 bytes without NUL");
  }
  // Sections in slot order; an empty one is absent (offset and size 0).
  std::vector<std::pair<const std::uint8_t*, std::size_t>> sections(kMapSectionCountV1,
                                                                    {nullptr, 0});
  auto bytes_of = [](const auto& v) {
    return std::make_pair(reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(v[0]));
  };
  sections[0] = {c.codes.data(), c.codes.size()};
  if (!c.scales.empty()) sections[1] = bytes_of(c.scales);
  std::vector<std::uint32_t> offsets;
  std::string name_data;
  if (!c.names.empty()) {
    offsets.reserve(c.count + 1);
    offsets.push_back(0);
    for (const std::string& n : c.names) {
      name_data += n;
      if (name_data.size() >= (std::size_t{1} << 32)) {
        throw std::invalid_argument("names take more than 4 GiB; shorten them");
      }
      offsets.push_back(static_cast<std::uint32_t>(name_data.size()));
    }
    sections[4] = bytes_of(offsets);
    sections[5] = {reinterpret_cast<const std::uint8_t*>(name_data.data()), name_data.size()};
  }
  if (!c.positions.empty()) sections[6] = bytes_of(c.positions);
  if (!c.timestamps.empty()) sections[7] = bytes_of(c.timestamps);

  std::vector<std::uint8_t> out(kMapHeaderSizeV1, 0);
  std::size_t offset = kMapHeaderSizeV1;
  for (std::size_t s = 0; s < sections.size(); ++s) {
    const auto [data, size] = sections[s];
    if (size == 0) continue;  // absent (also name data when every name is empty)
    offset += (kMapAlignment - offset % kMapAlignment) % kMapAlignment;
    out.resize(offset, 0);
    put<std::uint64_t>(out, 152 + 16 * s, offset);
    put<std::uint64_t>(out, 160 + 16 * s, size);
    out.insert(out.end(), data, data + size);
    offset += size;
  }
  const std::uint32_t payload_crc =
      crc32(out.data() + kMapHeaderSizeV1, out.size() - kMapHeaderSizeV1);
  std::memcpy(out.data(), kMagic, 8);
  put<std::uint32_t>(out, 8, 1);  // format version
  put<std::uint32_t>(out, 12, static_cast<std::uint32_t>(kMapHeaderSizeV1));
  put<std::uint64_t>(out, 16, out.size());
  put<std::uint64_t>(out, 24, c.count);
  put<std::uint32_t>(out, 32, static_cast<std::uint32_t>(c.dim));
  put<std::uint32_t>(out, 36, static_cast<std::uint32_t>(c.dim));  // input dim: no projection
  out[40] = static_cast<std::uint8_t>(c.storage);
  out[41] = static_cast<std::uint8_t>(c.position_kind);
  put<std::uint32_t>(out, 44, payload_crc);
  std::memcpy(out.data() + 56, c.model_sha256.data(), 32);
  std::memcpy(out.data() + 88, c.model_name.data(), c.model_name.size());
  put<std::uint32_t>(out, 48, crc32(out.data(), kMapHeaderSizeV1));  // with its field 0
  return out;
}

namespace {

// What map_content cannot read back: PQ codes and a projection (host-built maps).
void check_extendable(const MapFileView& m) {
  if (m.storage() == Storage::Pq4) {
    throw std::runtime_error("cannot extend a pq4 map on the device: rebuild it with Python");
  }
  if (m.projection().enabled()) {
    throw std::runtime_error(
        "cannot extend a map with a PCA projection on the device: record into a map "
        "without --pca");
  }
}

}  // namespace

MapContent map_content(const MapFileView& m) {
  check_extendable(m);
  MapContent c;
  const DatabaseView& v = m.view();
  c.storage = v.storage;
  c.count = v.count;
  c.dim = v.dim;
  const auto* codes = static_cast<const std::uint8_t*>(v.codes);
  c.codes.assign(codes, codes + v.count * v.row_bytes());
  if (v.scales != nullptr) c.scales.assign(v.scales, v.scales + v.count);
  c.model_sha256 = m.model_sha256();
  c.model_name = m.model_name();
  if (m.has_names()) {
    for (std::size_t i = 0; i < c.count; ++i) c.names.emplace_back(m.name(i));
  }
  if (m.positions() != nullptr) {
    c.positions.assign(m.positions(), m.positions() + 2 * c.count);
    c.position_kind = m.position_kind();
  }
  if (m.timestamps() != nullptr) c.timestamps.assign(m.timestamps(), m.timestamps() + c.count);
  return c;
}

void write_map_atomic(const std::string& path, const std::vector<std::uint8_t>& bytes,
                      double timeout_s) {
  const std::string target = map_target(path);
  WriteLock lock(target, timeout_s);
  write_atomic_locked(target, bytes);
}

}  // namespace vpr

// ---- MapRecorder: the journal ----------------------------------------------------------
namespace vpr {
namespace {

constexpr char kJournalMagic[8] = {'V', 'P', 'R', 'J', 'R', 'N', 'L', '\n'};
constexpr std::size_t kJournalHeader = 128;  // magic, version, dim, base, storage, sha, name
constexpr std::size_t kJournalName = 256;    // name bytes kept per frame

// A record: the descriptor, the time, (journal version 2) the position x, y, the name's
// length and bytes, a CRC. Version 1 journals (no position) are still folded.
constexpr std::uint32_t kJournalVersion = 2;
std::size_t record_bytes(std::size_t dim, std::uint32_t version) {
  return 4 * dim + 8 + (version >= 2 ? 16 : 0) + 4 + kJournalName + 4;
}

std::string journal_for(const std::string& map_path) {
  const fs::path t(map_target(map_path));
  return (folder_of(t) / ("." + t.filename().string() + ".journal")).string();
}

struct JournalHeader {
  std::size_t dim = 0;
  std::size_t base = 0;
  Storage storage = Storage::Int8;
  PositionKind position_kind = PositionKind::None;
  std::array<std::uint8_t, 32> sha{};
  std::string model_name;
};

// A journal's frames.
struct JournalFrames {
  std::vector<float> rows;
  std::vector<double> times;
  std::vector<double> positions;  // x, y per frame when the journal has positions
  std::vector<std::string> names;
};

std::vector<std::uint8_t> header_bytes(const JournalHeader& h) {
  std::vector<std::uint8_t> b(kJournalHeader, 0);
  std::memcpy(b.data(), kJournalMagic, 8);
  put<std::uint32_t>(b, 8, kJournalVersion);
  put<std::uint32_t>(b, 12, static_cast<std::uint32_t>(h.dim));
  put<std::uint64_t>(b, 16, h.base);
  b[24] = static_cast<std::uint8_t>(h.storage);
  b[25] = static_cast<std::uint8_t>(h.position_kind);
  std::memcpy(b.data() + 32, h.sha.data(), 32);
  std::memcpy(b.data() + 64, h.model_name.data(), std::min<std::size_t>(h.model_name.size(), 60));
  put<std::uint32_t>(b, 124, crc32(b.data(), 124));
  return b;
}

// The journal's header and its whole, intact records (a torn last record is dropped).
bool read_journal(const std::string& path, JournalHeader* h, JournalFrames* frames) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return false;
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < kJournalHeader)
    return false;
  std::vector<std::uint8_t> data(static_cast<std::size_t>(st.st_size));
  std::size_t have = 0;
  while (have < data.size()) {
    const ssize_t n = ::read(f.fd, data.data() + have, data.size() - have);
    if (n <= 0) break;
    have += static_cast<std::size_t>(n);
  }
  data.resize(have);
  if (have < kJournalHeader || std::memcmp(data.data(), kJournalMagic, 8) != 0) return false;
  std::uint32_t version = 0, dim = 0, crc = 0;
  std::uint64_t base = 0;
  std::memcpy(&version, data.data() + 8, 4);
  std::memcpy(&dim, data.data() + 12, 4);
  std::memcpy(&base, data.data() + 16, 8);
  std::memcpy(&crc, data.data() + 124, 4);
  if (version < 1 || version > kJournalVersion || dim == 0 || crc != crc32(data.data(), 124) ||
      data[24] > 3 || data[25] > 2 || (version < 2 && data[25] != 0)) {
    return false;
  }
  h->dim = dim;
  h->position_kind = static_cast<PositionKind>(data[25]);
  h->base = base;
  h->storage = static_cast<Storage>(data[24]);
  std::memcpy(h->sha.data(), data.data() + 32, 32);
  h->model_name.assign(reinterpret_cast<const char*>(data.data() + 64),
                       ::strnlen(reinterpret_cast<const char*>(data.data() + 64), 60));
  const std::size_t rb = record_bytes(dim, version);
  const std::size_t name_at = 4 * dim + 8 + (version >= 2 ? 16 : 0);
  for (std::size_t at = kJournalHeader; at + rb <= have; at += rb) {
    const std::uint8_t* r = data.data() + at;
    std::uint32_t rcrc = 0, len = 0;
    std::memcpy(&rcrc, r + rb - 4, 4);
    if (rcrc != crc32(r, rb - 4)) break;  // torn or garbage: the journal ends here
    const std::size_t n0 = frames->rows.size();
    frames->rows.resize(n0 + dim);
    std::memcpy(frames->rows.data() + n0, r, 4 * dim);
    double t = 0;
    std::memcpy(&t, r + 4 * dim, 8);
    frames->times.push_back(t);
    if (h->position_kind != PositionKind::None) {
      double xy[2];
      std::memcpy(xy, r + 4 * dim + 8, 16);
      frames->positions.insert(frames->positions.end(), xy, xy + 2);
    }
    std::memcpy(&len, r + name_at, 4);
    frames->names.emplace_back(reinterpret_cast<const char*>(r + name_at + 4),
                               std::min<std::size_t>(len, kJournalName));
  }
  return true;
}

// A map a recording may extend: one map_content can read back, of the recorder's
// dimension, holding what a recorded place has (a name, a time, a position of the
// recording's kind or none) and nothing it lacks. Checked before any place is copied.
void check_recordable(const MapFileView& m, std::size_t dim, PositionKind kind,
                      const std::string& path) {
  check_extendable(m);
  if (m.dim() != dim || !m.has_names() || m.timestamps() == nullptr) {
    throw std::runtime_error(path +
                             ": recording extends maps of this model's dimension with names "
                             "and timestamps: record into a new map");
  }
  const PositionKind has = m.positions() != nullptr ? m.position_kind() : PositionKind::None;
  if (has != kind) {
    throw std::runtime_error(
        path + " has " +
        (has == PositionKind::None ? std::string("no positions")
                                   : std::string(position_kind_name(has)) + " positions") +
        ", this recording " +
        (kind == PositionKind::None ? std::string("none")
                                    : std::string(position_kind_name(kind)) + " positions") +
        ": record with the same kind of positions, or into a new map");
  }
}

bool map_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// Folds the journal into the map under the map's lock; returns the map's place count.
std::size_t fold_locked(const std::string& target, const std::string& journal,
                        const JournalHeader& h, const JournalFrames& frames,
                        bool* wrote = nullptr) {
  const std::size_t n = frames.times.size();
  if (wrote != nullptr) *wrote = false;
  MapContent c;
  if (map_exists(target)) {
    MapFile f = MapFile::open(target);
    if (f.map().model_sha256() != h.sha) {
      throw std::runtime_error(target + " was built with another model than journal " + journal);
    }
    if (f.map().count() == h.base + n && n > 0) return h.base + n;  // folded before a kill
    if (f.map().count() != h.base) {
      throw std::runtime_error(target + " holds " + std::to_string(f.map().count()) +
                               " places, the journal " + journal + " extends a map of " +
                               std::to_string(h.base) +
                               ": another writer changed the map while recording");
    }
    check_recordable(f.map(), h.dim, h.position_kind, target);
    c = map_content(f.map());
  } else {
    if (h.base != 0) {
      throw std::runtime_error(target + " is gone, but journal " + journal + " extends it");
    }
    c.storage = h.storage;
    c.dim = h.dim;
    c.model_sha256 = h.sha;
    c.model_name = h.model_name;
    c.position_kind = h.position_kind;
  }
  if (n == 0) return c.count;
  std::vector<float> unit(frames.rows.size());
  normalise_rows(frames.rows.data(), n, h.dim, unit.data());
  c.append_rows(unit.data(), n);
  c.names.insert(c.names.end(), frames.names.begin(), frames.names.end());
  c.timestamps.insert(c.timestamps.end(), frames.times.begin(), frames.times.end());
  c.positions.insert(c.positions.end(), frames.positions.begin(), frames.positions.end());
  write_atomic_locked(target, serialise_map(c));
  if (wrote != nullptr) *wrote = true;
  return c.count;
}

}  // namespace

bool fold_journal(const std::string& map_path) {
  const std::string target = map_target(map_path);
  const std::string journal = journal_for(map_path);
  WriteLock lock(target, 120.0);
  JournalHeader h;
  JournalFrames frames;
  bool wrote = false;
  if (read_journal(journal, &h, &frames)) fold_locked(target, journal, h, frames, &wrote);
  std::error_code ec;
  fs::remove(journal, ec);
  return wrote;
}

MapRecorder::MapRecorder(std::string path, const std::array<std::uint8_t, 32>& model_sha256,
                         std::string model_name, std::size_t dim, const Options& options)
    : path_(map_target(path)),
      journal_path_(journal_for(path)),
      sha_(model_sha256),
      model_name_(std::move(model_name)),
      dim_(dim),
      options_(options) {
  if (dim == 0 || options.fold_every == 0 || options.storage == Storage::Pq4) {
    throw std::invalid_argument(
        "MapRecorder: dim and fold_every must be positive, storage "
        "float32, float16, int8 or binary");
  }
  if (model_name_.size() > 60) model_name_.resize(60);
  fold_journal(path_);  // a journal a killed recorder left
  if (map_exists(path_)) {
    MapFile f = MapFile::open(path_);
    const MapFileView& m = f.map();
    if (m.model_sha256() != sha_) {
      throw std::runtime_error(path_ + " was built with model " +
                               m.model_sha256_hex().substr(0, 16) + "... (" + m.model_name() +
                               "), not this bundle's: record into a new map");
    }
    check_recordable(m, dim_, options_.position_kind, path_);
    options_.storage = m.view().storage;
    base_count_ = m.count();
  }
  start_journal();
}

void MapRecorder::start_journal() {
  if (journal_fd_ >= 0) ::close(journal_fd_);
  journal_fd_ = ::open(journal_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (journal_fd_ < 0) {
    throw std::runtime_error("cannot create the journal " + journal_path_ + ": " + errno_text());
  }
  JournalHeader h;
  h.dim = dim_;
  h.base = base_count_;
  h.storage = options_.storage;
  h.position_kind = options_.position_kind;
  h.sha = sha_;
  h.model_name = model_name_;
  const std::vector<std::uint8_t> b = header_bytes(h);
  write_all(journal_fd_, b.data(), b.size(), journal_path_);
  ::fsync(journal_fd_);
  pending_ = 0;
}

void MapRecorder::add(const float* descriptor, double timestamp, const std::string& name,
                      const double* position) {
  if (closed_) throw std::logic_error("MapRecorder::add after close()");
  const bool positioned = options_.position_kind != PositionKind::None;
  if (positioned &&
      (position == nullptr || !std::isfinite(position[0]) || !std::isfinite(position[1]))) {
    throw std::invalid_argument("frame " + name + " has no finite position, and this recording " +
                                "gives every place one");
  }
  std::vector<std::uint8_t> r(record_bytes(dim_, kJournalVersion), 0);
  std::memcpy(r.data(), descriptor, 4 * dim_);
  std::memcpy(r.data() + 4 * dim_, &timestamp, 8);
  if (positioned) std::memcpy(r.data() + 4 * dim_ + 8, position, 16);
  const std::size_t name_at = 4 * dim_ + 8 + 16;
  // A name over 256 bytes keeps its first 256, cut at a UTF-8 character boundary.
  std::size_t len = std::min(name.size(), kJournalName);
  while (len < name.size() && len > 0 && (static_cast<unsigned char>(name[len]) & 0xC0) == 0x80) {
    --len;
  }
  const auto len32 = static_cast<std::uint32_t>(len);
  std::memcpy(r.data() + name_at, &len32, 4);
  std::memcpy(r.data() + name_at + 4, name.data(), len);
  put<std::uint32_t>(r, r.size() - 4, crc32(r.data(), r.size() - 4));
  // One write() per record: a kill leaves whole records and at most one torn one, which
  // its CRC drops. No fsync per frame: the page cache survives a killed process; a folded
  // map is fsynced.
  write_all(journal_fd_, r.data(), r.size(), journal_path_);
  if (++pending_ >= options_.fold_every) fold();
}

void MapRecorder::fold() {
  if (pending_ == 0) return;
  WriteLock lock(path_, 120.0);
  JournalHeader h;
  JournalFrames frames;
  if (!read_journal(journal_path_, &h, &frames)) {
    throw std::runtime_error("the journal " + journal_path_ + " is unreadable");
  }
  base_count_ = fold_locked(path_, journal_path_, h, frames);
  start_journal();
}

void MapRecorder::close() {
  if (closed_) return;
  fold();
  closed_ = true;
  ::close(journal_fd_);
  journal_fd_ = -1;
  std::error_code ec;
  fs::remove(journal_path_, ec);
}

MapRecorder::~MapRecorder() {
  try {
    close();
  } catch (...) {  // the journal stays; the next recorder or fold_journal folds it
  }
  if (journal_fd_ >= 0) ::close(journal_fd_);
}

}  // namespace vpr
