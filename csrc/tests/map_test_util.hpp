// Test-only writer of map files (the production writer is vpr_embedded/maps.py);
// an independent second implementation of docs/map_format.md.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "vpr/map_file.hpp"
#include "vpr/matcher.hpp"

namespace vpr_test {

// 8-byte aligned byte buffer.
struct Buffer {
  std::vector<std::uint64_t> words;
  std::size_t size = 0;
  std::uint8_t* data() { return reinterpret_cast<std::uint8_t*>(words.data()); }
  const std::uint8_t* data() const { return reinterpret_cast<const std::uint8_t*>(words.data()); }
  void resize(std::size_t n) {
    words.assign((n + 7) / 8, 0);
    size = n;
  }
};

struct MapSpec {
  vpr::Storage storage = vpr::Storage::Float32;
  std::size_t count = 50;
  std::size_t dim = 16;
  std::size_t input_dim = 0;  // > dim adds a projection (identity on the first dim inputs)
  bool names = true;
  bool positions = true;
  bool timestamps = true;
  unsigned seed = 1;
  // PQ map (format version 2): pq_m sub-quantizers; `storage` is then the re-rank codes'
  // storage when rerank is set. ivf_lists > 0 adds a coarse index (place p in list p %
  // ivf_lists, centroids = the first rows).
  std::size_t pq_m = 0;
  bool rerank = false;
  std::size_t ivf_lists = 0;
  std::uint32_t nprobe = 0;
};

// PQ parts of a test map: codebooks from rows (centroid c of sub-space j = sub-vector j
// of row c), codes by the highest inner product, slots as MapSpec says.
struct PqParts {
  std::vector<float> codebooks, centroids;
  std::vector<std::uint8_t> raw, packed;
  std::vector<std::uint64_t> list_blocks;
  std::vector<std::uint32_t> slot_places;
};

inline PqParts make_pq(const MapSpec& s, const std::vector<float>& rows) {
  PqParts p;
  const std::size_t m = s.pq_m, ds = s.dim / m;
  p.codebooks.resize(m * 16 * ds);
  for (std::size_t j = 0; j < m; ++j) {
    for (std::size_t c = 0; c < 16; ++c) {
      for (std::size_t t = 0; t < ds; ++t) {
        p.codebooks[(j * 16 + c) * ds + t] = rows[(c % s.count) * s.dim + j * ds + t];
      }
    }
  }
  p.raw.resize(s.count * m);
  for (std::size_t i = 0; i < s.count; ++i) {
    for (std::size_t j = 0; j < m; ++j) {
      float best = -1e30f;
      for (std::size_t c = 0; c < 16; ++c) {
        float d = 0.0f;
        for (std::size_t t = 0; t < ds; ++t) {
          d += rows[i * s.dim + j * ds + t] * p.codebooks[(j * 16 + c) * ds + t];
        }
        if (d > best) best = d, p.raw[i * m + j] = static_cast<std::uint8_t>(c);
      }
    }
  }
  if (s.ivf_lists == 0) {
    p.packed = vpr::pack_pq4_codes(p.raw.data(), s.count, m);
    return p;
  }
  p.centroids.assign(rows.begin(), rows.begin() + s.ivf_lists * s.dim);
  std::vector<std::uint8_t> slot_codes;
  p.list_blocks.push_back(0);
  for (std::size_t l = 0; l < s.ivf_lists; ++l) {
    for (std::size_t i = l; i < s.count; i += s.ivf_lists) {
      p.slot_places.push_back(static_cast<std::uint32_t>(i));
      slot_codes.insert(slot_codes.end(), p.raw.begin() + i * m, p.raw.begin() + (i + 1) * m);
    }
    while (p.slot_places.size() % 32 != 0) {
      p.slot_places.push_back(vpr::kPqNoPlace);
      slot_codes.insert(slot_codes.end(), m, 0);
    }
    p.list_blocks.push_back(p.slot_places.size() / 32);
  }
  p.packed = vpr::pack_pq4_codes(slot_codes.data(), p.slot_places.size(), m);
  return p;
}

inline std::vector<float> unit_rows(std::size_t n, std::size_t d, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * d);
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0.0;
    for (std::size_t j = 0; j < d; ++j) {
      x[i * d + j] = normal(rng);
      norm += static_cast<double>(x[i * d + j]) * x[i * d + j];
    }
    for (std::size_t j = 0; j < d; ++j) x[i * d + j] /= static_cast<float>(std::sqrt(norm));
  }
  return x;
}

template <typename T>
void put(Buffer& b, std::size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

inline std::size_t align64(std::size_t x) { return (x + 63) / 64 * 64; }

// Encodes `rows` (count x dim) into a complete, checksummed map.
inline Buffer write_map(const MapSpec& s, const std::vector<float>& rows) {
  const auto db = vpr::Database::encode(rows.data(), s.count, s.dim, s.storage);
  std::vector<std::vector<std::uint8_t>> sections(vpr::kMapSectionCount);
  auto bytes = [](const void* p, std::size_t n) {
    const auto* c = static_cast<const std::uint8_t*>(p);
    return std::vector<std::uint8_t>(c, c + n);
  };
  const bool pq = s.pq_m > 0;
  if (!pq || s.rerank) sections[0] = db.codes();
  if (s.storage == vpr::Storage::Int8 && (!pq || s.rerank)) {
    sections[1] = bytes(db.scales().data(), db.scales().size() * 4);
  }
  const std::size_t in_dim = s.input_dim == 0 ? s.dim : s.input_dim;
  if (in_dim != s.dim) {
    std::vector<float> proj(in_dim * s.dim, 0.0f);
    for (std::size_t o = 0; o < s.dim; ++o) proj[o * s.dim + o] = 1.0f;
    sections[2] = bytes(proj.data(), proj.size() * 4);
    std::vector<float> mean(in_dim, 0.0f);
    sections[3] = bytes(mean.data(), mean.size() * 4);
  }
  if (s.names) {
    std::vector<std::uint32_t> offs{0};
    std::string data;
    for (std::size_t i = 0; i < s.count; ++i) {
      data += "place-" + std::to_string(i);
      offs.push_back(static_cast<std::uint32_t>(data.size()));
    }
    sections[4] = bytes(offs.data(), offs.size() * 4);
    sections[5] = bytes(data.data(), data.size());
  }
  if (s.positions) {
    std::vector<double> pos(2 * s.count);
    for (std::size_t i = 0; i < pos.size(); ++i) pos[i] = 0.5 * static_cast<double>(i);
    sections[6] = bytes(pos.data(), pos.size() * 8);
  }
  if (s.timestamps) {
    std::vector<double> ts(s.count);
    for (std::size_t i = 0; i < ts.size(); ++i) ts[i] = 10.0 * static_cast<double>(i);
    sections[7] = bytes(ts.data(), ts.size() * 8);
  }
  if (pq) {
    const PqParts p = make_pq(s, rows);
    const std::size_t blocks = p.packed.size() / (s.pq_m * 16);
    std::vector<std::uint8_t> info(64, 0);
    const auto m32 = static_cast<std::uint32_t>(s.pq_m);
    const std::uint32_t bits = 4, nlist = static_cast<std::uint32_t>(s.ivf_lists);
    const std::uint64_t b64 = blocks;
    std::memcpy(info.data(), &m32, 4);
    std::memcpy(info.data() + 4, &bits, 4);
    std::memcpy(info.data() + 8, &b64, 8);
    std::memcpy(info.data() + 16, &nlist, 4);
    std::memcpy(info.data() + 20, &s.nprobe, 4);
    info[24] = s.rerank ? static_cast<std::uint8_t>(s.storage) : 0xFF;
    sections[8] = info;
    sections[9] = bytes(p.codebooks.data(), p.codebooks.size() * 4);
    sections[10] = p.packed;
    if (s.ivf_lists > 0) {
      sections[11] = bytes(p.centroids.data(), p.centroids.size() * 4);
      sections[12] = bytes(p.list_blocks.data(), p.list_blocks.size() * 8);
      sections[13] = bytes(p.slot_places.data(), p.slot_places.size() * 4);
    }
  }
  const std::size_t header = pq ? vpr::kMapHeaderSizeV2 : vpr::kMapHeaderSizeV1;
  std::size_t off = header;
  std::vector<std::size_t> offsets(vpr::kMapSectionCount, 0);
  for (std::size_t i = 0; i < sections.size(); ++i) {
    if (sections[i].empty()) continue;
    off = align64(off);
    offsets[i] = off;
    off += sections[i].size();
  }
  Buffer b;
  b.resize(off);
  std::memcpy(b.data(), vpr::kMapMagic, 8);
  put<std::uint32_t>(b, 8, pq ? 2 : 1);
  put<std::uint32_t>(b, 12, static_cast<std::uint32_t>(header));
  put<std::uint64_t>(b, 16, off);
  put<std::uint64_t>(b, 24, s.count);
  put<std::uint32_t>(b, 32, static_cast<std::uint32_t>(s.dim));
  put<std::uint32_t>(b, 36, static_cast<std::uint32_t>(in_dim));
  put<std::uint8_t>(b, 40, pq ? std::uint8_t{4} : static_cast<std::uint8_t>(s.storage));
  put<std::uint8_t>(b, 41, s.positions ? 2 : 0);
  for (std::size_t i = 0; i < 32; ++i) put<std::uint8_t>(b, 56 + i, static_cast<std::uint8_t>(i));
  std::memcpy(b.data() + 88, "test-model", 10);
  for (std::size_t i = 0; i < (pq ? sections.size() : vpr::kMapSectionCountV1); ++i) {
    const std::size_t slot = i < 8 ? 152 + 16 * i : 320 + 16 * (i - 8);
    put<std::uint64_t>(b, slot, offsets[i]);
    put<std::uint64_t>(b, slot + 8, sections[i].size());
    if (!sections[i].empty()) {
      std::memcpy(b.data() + offsets[i], sections[i].data(), sections[i].size());
    }
  }
  put<std::uint32_t>(b, 44, vpr::crc32(b.data() + header, off - header));
  put<std::uint32_t>(b, 48, vpr::crc32(b.data(), header));
  return b;
}

}  // namespace vpr_test
