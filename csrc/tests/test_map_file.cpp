// Map file reader: round trip, zero-copy search, and refusal of every kind of bad file.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "map_test_util.hpp"
#include "vpr/map_file.hpp"
#include "vpr/matcher.hpp"

namespace {

using vpr_test::Buffer;
using vpr_test::MapSpec;

std::string parse_error(const Buffer& b, std::size_t size, bool verify = true) {
  vpr::MapOpenOptions opt;
  opt.verify_checksum = verify;
  try {
    vpr::MapFileView::parse(b.data(), size, opt);
  } catch (const std::runtime_error& e) {
    return e.what();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::string temp_path(const char* name) {
  return std::string("/tmp/vpr_test_") + std::to_string(::getpid()) + "_" + name;
}

}  // namespace

TEST_CASE("map crc32 matches the IEEE/zlib check value") {
  const char* text = "123456789";
  CHECK(vpr::crc32(text, 9) == 0xCBF43926u);
  CHECK(vpr::crc32(text + 4, 5, vpr::crc32(text, 4)) == 0xCBF43926u);
  CHECK(vpr::crc32(nullptr, 0) == 0u);
}

TEST_CASE("map file round trip for every storage, zero-copy search equals in-memory search") {
  for (auto storage :
       {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
    MapSpec spec;
    spec.storage = storage;
    spec.count = 300;
    spec.dim = 40;
    const auto rows = vpr_test::unit_rows(spec.count, spec.dim, 3);
    const Buffer b = vpr_test::write_map(spec, rows);
    const auto m = vpr::MapFileView::parse(b.data(), b.size);
    CHECK(m.count() == spec.count);
    CHECK(m.dim() == spec.dim);
    CHECK(m.input_dim() == spec.dim);
    CHECK(m.storage() == storage);
    CHECK(m.model_name() == "test-model");
    CHECK(m.model_sha256_hex().substr(0, 6) == "000102");
    CHECK(m.name(7) == "place-7");
    CHECK(m.position_kind() == vpr::PositionKind::Utm);
    CHECK(m.positions()[3] == doctest::Approx(1.5));
    CHECK(m.timestamps()[2] == doctest::Approx(20.0));
    CHECK_THROWS_AS(m.name(spec.count), std::out_of_range);
    const auto* codes = static_cast<const std::uint8_t*>(m.view().codes);
    CHECK(codes > b.data());
    CHECK((codes - b.data()) % 64 == 0);  // zero-copy in place: aligned in a page-aligned mmap

    const auto memory = vpr::Database::encode(rows.data(), spec.count, spec.dim, storage);
    const auto queries = vpr_test::unit_rows(5, spec.dim, 4);
    vpr::SearchOptions opt;
    opt.k = 5;
    opt.num_threads = 1;
    const auto a = m.search(queries.data(), 5, spec.dim, opt);
    const auto e = vpr::search(memory.view(), queries.data(), 5, spec.dim, opt);
    CHECK(a.ids == e.ids);
    CHECK(a.scores == e.scores);
  }
}

TEST_CASE("map file with a projection searches raw queries") {
  MapSpec spec;
  spec.count = 64;
  spec.dim = 8;
  spec.input_dim = 12;
  const auto rows = vpr_test::unit_rows(spec.count, spec.dim, 5);
  const Buffer b = vpr_test::write_map(spec, rows);
  const auto m = vpr::MapFileView::parse(b.data(), b.size);
  CHECK(m.projection().enabled());
  CHECK(m.input_dim() == 12);
  // The test projection keeps the first 8 inputs: place 9 padded with 4 zeros finds itself.
  std::vector<float> q(12, 0.0f);
  for (std::size_t j = 0; j < 8; ++j) q[j] = rows[9 * 8 + j];
  vpr::SearchOptions opt;
  opt.k = 1;
  CHECK(m.search(q.data(), 1, 12, opt).ids[0] == 9);
  const std::string err = [&] {
    try {
      m.search(q.data(), 1, 8, opt);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  CHECK(err.find("built for model 'test-model' with descriptor dimension 12") != std::string::npos);
}

TEST_CASE("map file refuses foreign, truncated, newer and corrupt files with clear messages") {
  MapSpec spec;
  spec.storage = vpr::Storage::Int8;
  spec.count = 20;
  spec.dim = 24;
  const Buffer good = vpr_test::write_map(spec, vpr_test::unit_rows(20, 24, 6));
  CHECK(parse_error(good, good.size).empty());

  Buffer b = good;
  b.data()[0] = 'X';
  CHECK(parse_error(b, b.size) == "not a vpr-embedded map (wrong magic bytes)");

  b = good;
  vpr_test::put<std::uint32_t>(b, 8, 7);
  CHECK(parse_error(b, b.size) ==
        "map format version 7 is newer than this build supports (2): rebuild the map or upgrade "
        "vpr-embedded");

  CHECK(parse_error(good, good.size - 1) == "truncated: expected " + std::to_string(good.size) +
                                                " bytes, file has " +
                                                std::to_string(good.size - 1));
  CHECK(parse_error(good, 100).find("truncated: expected at least 320 bytes") == 0);

  b = good;
  b.data()[b.size - 1] ^= 0x10;
  CHECK(parse_error(b, b.size) == "checksum mismatch: the file is corrupt, rebuild it");

  // Every prefix is refused (and never read past).
  for (std::size_t n = 0; n < good.size; n += (n < 400 ? 1 : 97)) {
    CHECK_FALSE(parse_error(good, n).empty());
  }
  // Every single-bit flip in the header or a payload byte is refused when verifying.
  for (std::size_t byte = 0; byte < good.size; byte += (byte < vpr::kMapHeaderSize ? 1 : 13)) {
    for (int bit = 0; bit < 8; ++bit) {
      b = good;
      b.data()[byte] ^= static_cast<std::uint8_t>(1u << bit);
      CHECK_FALSE(parse_error(b, b.size).empty());
    }
  }
}

TEST_CASE("map file structural checks hold without checksum verification") {
  MapSpec spec;
  spec.count = 10;
  spec.dim = 16;
  const Buffer good = vpr_test::write_map(spec, vpr_test::unit_rows(10, 16, 7));
  Buffer b = good;
  vpr_test::put<std::uint64_t>(b, 24, 1ull << 62);  // count: sizes would overflow
  CHECK(parse_error(b, b.size, false).find("corrupt map") == 0);
  b = good;
  vpr_test::put<std::uint64_t>(b, 152, 1ull << 63);  // descriptor offset far outside
  CHECK(parse_error(b, b.size, false).find("corrupt map") == 0);
  b = good;
  vpr_test::put<std::uint64_t>(b, 152 + 8, ~0ull);  // descriptor size huge
  CHECK(parse_error(b, b.size, false).find("corrupt map") == 0);
  b = good;
  vpr_test::put<std::uint8_t>(b, 40, 9);  // storage
  CHECK(parse_error(b, b.size, false) == "corrupt map: unknown storage type 9; rebuild the map");
  b = good;
  vpr_test::put<std::uint32_t>(b, 36, 17);  // input dim without projection
  CHECK(parse_error(b, b.size, false).find("without a projection") != std::string::npos);
  b = good;
  const std::size_t name_offsets =
      static_cast<std::size_t>(*reinterpret_cast<const std::uint64_t*>(b.data() + 152 + 16 * 4));
  vpr_test::put<std::uint32_t>(b, name_offsets + 4 * 3, 0xFFFFFFu);
  CHECK(parse_error(b, b.size, false).find("name offsets") != std::string::npos);
}

TEST_CASE("MapFile reads small maps into memory, maps large ones, reports the path in errors") {
  MapSpec spec;
  spec.storage = vpr::Storage::Binary;
  spec.count = 100;
  spec.dim = 64;
  const Buffer good = vpr_test::write_map(spec, vpr_test::unit_rows(100, 64, 8));
  const std::string path = temp_path("ok.vprmap");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(good.data()), static_cast<std::streamsize>(good.size));
  }
  {
    vpr::MapFile f = vpr::MapFile::open(path);
    CHECK(f.view().count == 100);
    CHECK_FALSE(f.memory_mapped());  // under the copy limit: owned memory
    CHECK(reinterpret_cast<std::uintptr_t>(f.view().codes) % vpr::kMapAlignment == 0);
    vpr::MapFile moved = std::move(f);
    CHECK(moved.map().name(99) == "place-99");
    vpr::MapOpenOptions mapped;
    mapped.copy_limit_bytes = 0;
    vpr::MapFile g = vpr::MapFile::open(path, mapped);
    CHECK(g.memory_mapped());
    CHECK(g.map().name(42) == "place-42");
  }
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(good.data()), 500);
  }
  try {
    vpr::MapFile::open(path);
    FAIL("a truncated file was accepted");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) ==
          path + ": truncated: expected " + std::to_string(good.size) + " bytes, file has 500");
  }
  { std::ofstream out(path, std::ios::binary | std::ios::trunc); }
  CHECK_THROWS_AS(vpr::MapFile::open(path), std::runtime_error);
  std::remove(path.c_str());
  CHECK_THROWS_WITH_AS(
      vpr::MapFile::open(path),
      (std::string("cannot open map ") + path + ": No such file or directory").c_str(),
      std::runtime_error);
}

TEST_CASE("MapFile refuses a FIFO at once instead of waiting for a writer") {
  const std::string path = temp_path("fifo.vprmap");
  std::remove(path.c_str());
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  alarm(20);  // before the fix open() blocked here forever: fail, do not hang
  CHECK_THROWS_WITH_AS(vpr::MapFile::open(path),
                       (path + " is not a regular file (a map is a .vprmap file)").c_str(),
                       std::runtime_error);
  alarm(0);
  std::remove(path.c_str());
}

TEST_CASE("PQ maps (format version 2): search equals search_pq on the same sections") {
  for (std::size_t lists : {0, 7}) {
    for (bool rerank : {false, true}) {
      vpr_test::MapSpec spec;
      spec.count = 300;
      spec.dim = 32;
      spec.pq_m = 8;
      spec.storage = vpr::Storage::Int8;
      spec.rerank = rerank;
      spec.ivf_lists = lists;
      spec.nprobe = lists > 0 ? 3 : 0;
      const auto rows = vpr_test::unit_rows(spec.count, spec.dim, 3);
      const auto buf = vpr_test::write_map(spec, rows);
      const auto m = vpr::MapFileView::parse(buf.data(), buf.size);
      INFO("lists " << lists << " rerank " << rerank);
      REQUIRE(m.pq() != nullptr);
      CHECK(m.format_version() == 2);
      CHECK(m.storage() == vpr::Storage::Pq4);
      CHECK(m.has_rerank_codes() == rerank);
      CHECK(m.default_nprobe() == spec.nprobe);
      CHECK(m.pq()->m == 8);
      const auto q = vpr_test::unit_rows(2, spec.dim, 9);
      vpr::SearchOptions opt;
      opt.k = 5;
      const auto got = m.search(q.data(), 2, spec.dim, opt);
      vpr::SearchOptions direct = opt;
      direct.nprobe = spec.nprobe;
      if (rerank) {
        direct.rerank = &m.view();
        direct.shortlist = vpr::kPqDefaultShortlist;
      }
      const auto want = vpr::search_pq(*m.pq(), q.data(), 2, spec.dim, direct);
      CHECK(got.ids == want.ids);
      // A place's own row finds it first (codebooks hold rows 0..15 exactly).
      if (lists == 0) {
        const auto self = m.search(rows.data() + 3 * spec.dim, 1, spec.dim, opt);
        CHECK(self.ids[0] == 3);
      }
      // Position prior: positions are (i, i + 0.5) / 2 ... place i at (i, i + 0.5).
      const auto near = m.places_near(100.0, 100.5, 2.0);
      REQUIRE(!near.empty());
      for (std::uint32_t id : near) CHECK((id >= 99 && id <= 101));
      vpr::SearchOptions prior = opt;
      prior.restrict_to_candidates = true;
      prior.candidates = near.data();
      prior.num_candidates = near.size();
      const auto r = m.search(q.data(), 1, spec.dim, prior);
      CHECK(r.k == near.size());
      for (std::int64_t id : r.ids) CHECK((id >= 99 && id <= 101));
      if (!rerank) {
        CHECK_THROWS_AS(vpr::search(m.view(), q.data(), 1, spec.dim, opt), std::invalid_argument);
      }
    }
  }
}

TEST_CASE("PQ map sections are checked: sizes, slot maps, reserved bytes") {
  vpr_test::MapSpec spec;
  spec.count = 100;
  spec.dim = 16;
  spec.pq_m = 4;
  spec.ivf_lists = 3;
  const auto rows = vpr_test::unit_rows(spec.count, spec.dim, 4);
  const auto good = vpr_test::write_map(spec, rows);
  CHECK(parse_error(good, good.size).empty());
  // Sections 8..15 sit at 320 + 16 * (s - 8); corrupt a few, without checksums.
  auto with = [&](std::size_t off, std::uint64_t v) {
    auto b = good;
    vpr_test::put<std::uint64_t>(b, off, v);
    return parse_error(b, b.size, false);
  };
  CHECK(with(320 + 8, 63).find("PQ info section has 63 bytes") != std::string::npos);
  CHECK(with(320 + 2 * 16 + 8, 1).find("PQ codes section") != std::string::npos);
  // Slot 13 (slot places): one place twice.
  auto b = good;
  std::uint64_t slots_off = 0;
  std::memcpy(&slots_off, b.data() + 320 + 5 * 16, 8);
  vpr_test::put<std::uint32_t>(b, slots_off, 1);
  CHECK(parse_error(b, b.size, false).find("has two slots") != std::string::npos);
  // A reserved slot (14) in use.
  CHECK(with(320 + 6 * 16 + 8, 64).find("reserved slot 14") != std::string::npos);
  // PQ storage in a version-1 header is unknown.
  auto v1 = vpr_test::write_map(vpr_test::MapSpec{}, vpr_test::unit_rows(50, 16, 1));
  vpr_test::put<std::uint8_t>(v1, 40, 4);
  CHECK(parse_error(v1, v1.size, false) == "corrupt map: unknown storage type 4; rebuild the map");
}
