// The device's map writer and recorder (vpr/map_writer.hpp). Python's writer gives the
// same bytes (tests/test_runtime.py); here: what the reader accepts, and the journal.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "vpr/map_file.hpp"
#include "vpr/map_writer.hpp"

namespace {

namespace fs = std::filesystem;

std::vector<float> random_rows(std::size_t n, std::size_t d, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> g;
  std::vector<float> x(n * d);
  for (float& v : x) v = g(gen);
  return x;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("vpr_writer_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::array<std::uint8_t, 32> sha_of(std::uint8_t b) {
  std::array<std::uint8_t, 32> s{};
  s.fill(b);
  return s;
}

}  // namespace

TEST_CASE("normalise_rows gives unit rows and refuses zero and non-finite rows") {
  std::vector<float> x = random_rows(4, 33, 3), out(x.size());
  vpr::normalise_rows(x.data(), 4, 33, out.data());
  for (std::size_t i = 0; i < 4; ++i) {
    double s = 0;
    for (std::size_t j = 0; j < 33; ++j) s += double(out[i * 33 + j]) * out[i * 33 + j];
    CHECK(std::abs(s - 1.0) < 1e-6);
  }
  std::vector<float> zero(33, 0.0F);
  CHECK_THROWS_WITH(vpr::normalise_rows(zero.data(), 1, 33, out.data()), "row 0 is all zeros");
  zero[3] = NAN;
  CHECK_THROWS_AS(vpr::normalise_rows(zero.data(), 1, 33, out.data()), std::invalid_argument);
}

TEST_CASE("serialise_map writes maps the reader accepts, and map_content reads them back") {
  for (vpr::Storage storage :
       {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
    CAPTURE(vpr::storage_name(storage));
    const std::size_t n = 37, d = 24;
    std::vector<float> x = random_rows(n, d, 5), unit(x.size());
    vpr::normalise_rows(x.data(), n, d, unit.data());
    vpr::MapContent c;
    c.storage = storage;
    c.dim = d;
    c.model_sha256 = sha_of(0xAB);
    c.model_name = "test-model";
    c.append_rows(unit.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      c.names.push_back(i % 5 == 0 ? "" : "place-" + std::to_string(i));
      c.timestamps.push_back(1000.0 + static_cast<double>(i));
    }
    const std::vector<std::uint8_t> bytes = vpr::serialise_map(c);
    vpr::MapOpenOptions o;
    const vpr::MapFileView m = vpr::MapFileView::parse(bytes.data(), bytes.size(), o);
    CHECK(m.count() == n);
    CHECK(m.dim() == d);
    CHECK(m.storage() == storage);
    CHECK(m.model_name() == "test-model");
    CHECK(m.name(7) == "place-7");
    CHECK(m.name(5).empty());
    CHECK(m.timestamps()[36] == 1036.0);
    const vpr::MapContent back = vpr::map_content(m);
    CHECK(back.codes == c.codes);
    CHECK(back.scales == c.scales);
    CHECK(back.names == c.names);
    CHECK(vpr::serialise_map(back) == bytes);
  }
  vpr::MapContent bad;
  bad.dim = 4;
  bad.count = 2;  // no codes for 2 rows
  CHECK_THROWS_AS(vpr::serialise_map(bad), std::invalid_argument);
}

TEST_CASE(
    "MapRecorder folds every N frames, appends to its map, and a torn journal record "
    "is dropped") {
  TempDir dir;
  const std::string path = (dir.path / "route.vprmap").string();
  const std::size_t d = 16;
  const std::vector<float> x = random_rows(10, d, 9);
  vpr::MapRecorder::Options opt;
  opt.fold_every = 3;
  {
    vpr::MapRecorder rec(path, sha_of(1), "m", d, opt);
    for (std::size_t i = 0; i < 7; ++i) {
      rec.add(x.data() + i * d, double(i), "f" + std::to_string(i));
      if (i == 2) CHECK(vpr::MapFile::open(path).map().count() == 3);  // folded at 3
    }
    CHECK(rec.places() == 7);
    rec.close();
  }
  CHECK(vpr::MapFile::open(path).map().count() == 7);
  CHECK_FALSE(fs::exists(dir.path / ".route.vprmap.journal"));

  // A killed recorder: its journal holds 2 whole records and a torn third.
  {
    vpr::MapRecorder rec(path, sha_of(1), "m", d, opt);
    rec.add(x.data() + 7 * d, 7.0, "f7");
    rec.add(x.data() + 8 * d, 8.0, "f8");
    const fs::path journal = dir.path / ".route.vprmap.journal";
    const fs::path saved = dir.path / "saved.journal";
    fs::copy_file(journal, saved);
    std::ofstream(saved, std::ios::app | std::ios::binary).write("torn", 4);
    rec.close();                    // folds 7 and 8 and removes the journal ...
    fs::copy_file(saved, journal);  // ... which the "kill" left behind instead
  }
  // The map already holds those two frames: the journal is dropped, not folded twice.
  CHECK_FALSE(vpr::fold_journal(path));
  CHECK(vpr::MapFile::open(path).map().count() == 9);
  CHECK(vpr::MapFile::open(path).map().name(8) == "f8");

  // A recorder of another model refuses the map.
  CHECK_THROWS_WITH_AS(vpr::MapRecorder(path, sha_of(2), "other", d, opt),
                       doctest::Contains("record into a new map"), std::runtime_error);
}

TEST_CASE("MapRecorder records positions, and refuses a map or frame without them") {
  TempDir dir;
  const std::string path = (dir.path / "gps.vprmap").string();
  const std::size_t d = 8;
  const std::vector<float> x = random_rows(6, d, 3);
  vpr::MapRecorder::Options opt;
  opt.fold_every = 2;
  opt.position_kind = vpr::PositionKind::LatLon;
  {
    vpr::MapRecorder rec(path, sha_of(1), "m", d, opt);
    for (std::size_t i = 0; i < 5; ++i) {
      const double xy[2] = {-27.47 + 1e-5 * double(i), 153.02 - 1e-5 * double(i)};
      rec.add(x.data() + i * d, double(i), "f" + std::to_string(i), xy);
    }
    // A frame without a position (or a NaN one) is refused; nothing is journaled for it.
    CHECK_THROWS_AS(rec.add(x.data() + 5 * d, 5.0, "f5"), std::invalid_argument);
    const double nan_xy[2] = {std::nan(""), 1.0};
    CHECK_THROWS_AS(rec.add(x.data() + 5 * d, 5.0, "f5", nan_xy), std::invalid_argument);
    rec.close();
  }
  const vpr::MapFile f = vpr::MapFile::open(path);
  REQUIRE(f.map().count() == 5);
  REQUIRE(f.map().positions() != nullptr);
  CHECK(f.map().position_kind() == vpr::PositionKind::LatLon);
  CHECK(f.map().positions()[2 * 4] == -27.47 + 4e-5);
  CHECK(f.map().positions()[2 * 4 + 1] == 153.02 - 4e-5);
  CHECK(f.map().name(4) == "f4");

  // Another kind of position, or none, cannot extend this map (nor the reverse).
  vpr::MapRecorder::Options utm = opt;
  utm.position_kind = vpr::PositionKind::Utm;
  CHECK_THROWS_WITH_AS(vpr::MapRecorder(path, sha_of(1), "m", d, utm),
                       doctest::Contains("latlon positions, this recording utm positions"),
                       std::runtime_error);
  vpr::MapRecorder::Options none = opt;
  none.position_kind = vpr::PositionKind::None;
  CHECK_THROWS_WITH_AS(vpr::MapRecorder(path, sha_of(1), "m", d, none),
                       doctest::Contains("this recording none"), std::runtime_error);
  const std::string plain = (dir.path / "plain.vprmap").string();
  {
    vpr::MapRecorder rec(plain, sha_of(1), "m", d, none);
    rec.add(x.data(), 0.0, "p0");
  }
  CHECK_THROWS_WITH_AS(vpr::MapRecorder(plain, sha_of(1), "m", d, opt),
                       doctest::Contains("has no positions"), std::runtime_error);
  // The same kind appends, positions and all.
  {
    vpr::MapRecorder rec(path, sha_of(1), "m", d, opt);
    const double xy[2] = {-27.0, 153.0};
    rec.add(x.data() + 5 * d, 5.0, "f5", xy);
  }
  const vpr::MapFile g = vpr::MapFile::open(path);
  REQUIRE(g.map().count() == 6);
  CHECK(g.map().positions()[2 * 5] == -27.0);
  CHECK(g.map().positions()[2 * 4] == -27.47 + 4e-5);
}
