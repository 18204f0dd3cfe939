// Database encoders shared by the Python bindings, the map builder and JNI.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "vpr/kernels.hpp"
#include "vpr/matcher.hpp"

namespace vpr {

const char* storage_name(Storage storage) {
  switch (storage) {
    case Storage::Float32:
      return "float32";
    case Storage::Float16:
      return "float16";
    case Storage::Int8:
      return "int8";
    case Storage::Binary:
      return "binary";
    case Storage::Pq4:
      return "pq4";
  }
  return "unknown";
}

std::size_t binary_bytes(std::size_t dim) { return (dim + 7) / 8; }

std::size_t DatabaseView::row_bytes() const {
  switch (storage) {
    case Storage::Float32:
      return dim * sizeof(float);
    case Storage::Float16:
      return dim * sizeof(std::uint16_t);
    case Storage::Int8:
      return dim;
    case Storage::Binary:
      return binary_bytes(dim);
    case Storage::Pq4:
      return 0;  // PQ codes live in 32-place blocks, not rows (vpr/pq.hpp)
  }
  return 0;
}

void DatabaseView::validate() const {
  if (storage == Storage::Pq4) {
    throw std::invalid_argument(
        "this map holds only PQ codes: search it through the map; matching that needs every "
        "place's score (sequences) needs a map built with re-rank codes (--rerank int8)");
  }
  if (static_cast<std::uint8_t>(storage) > static_cast<std::uint8_t>(Storage::Binary)) {
    throw std::invalid_argument("unknown storage type " +
                                std::to_string(static_cast<int>(storage)));
  }
  if (count == 0) {
    throw std::invalid_argument("the database is empty: add at least one place before searching");
  }
  if (dim == 0) throw std::invalid_argument("the database has dimension 0");
  if (codes == nullptr) throw std::invalid_argument("the database has no descriptor data");
  if (storage == Storage::Int8 && scales == nullptr) {
    throw std::invalid_argument("an int8 database needs one scale per place");
  }
}

void DatabaseView::check_values() const {
  validate();
  const std::size_t n = count * dim;
  auto bad = [&](std::size_t i, const char* what) {
    throw std::invalid_argument(std::string(what) + " at place " + std::to_string(i / dim) +
                                ": a database must hold finite, encoded descriptors");
  };
  switch (storage) {
    case Storage::Float32: {
      const auto* x = static_cast<const float*>(codes);
      for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i])) bad(i, "a non-finite float32 value");
      }
      break;
    }
    case Storage::Float16: {
      // Exponent bits all ones: inf or NaN.
      const auto* h = static_cast<const std::uint16_t*>(codes);
      for (std::size_t i = 0; i < n; ++i) {
        if ((h[i] & 0x7C00u) == 0x7C00u) bad(i, "a non-finite float16 value");
      }
      break;
    }
    case Storage::Int8: {
      const auto* c = static_cast<const std::int8_t*>(codes);
      for (std::size_t i = 0; i < n; ++i) {
        if (c[i] == -128) bad(i, "int8 code -128 (codes lie in [-127, 127])");
      }
      for (std::size_t i = 0; i < count; ++i) {
        if (!std::isfinite(scales[i]) || scales[i] < 0.0f) {
          bad(i * dim, "a NaN, infinite or negative int8 scale");
        }
      }
      break;
    }
    case Storage::Binary:
    case Storage::Pq4:  // validate() refused it
      break;            // every bit pattern is a valid code
  }
}

void encode_float16(const float* x, std::size_t n, std::size_t d, std::uint16_t* out) {
  for (std::size_t i = 0; i < n * d; ++i) out[i] = float_to_half(x[i]);
}

void quantize_int8(const float* x, std::size_t n, std::size_t d, std::int8_t* codes,
                   float* scales) {
  for (std::size_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    float max_abs = 0.0f;
    for (std::size_t j = 0; j < d; ++j) max_abs = std::max(max_abs, std::fabs(row[j]));
    const float scale = max_abs / 127.0f;
    scales[i] = scale;
    const float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
    // One loop in float or in double (T is the inverse's type).
    auto encode_row = [&](auto inv) {
      using T = decltype(inv);
      for (std::size_t j = 0; j < d; ++j) {
        const T q = std::nearbyint(static_cast<T>(row[j]) * inv);
        codes[i * d + j] = static_cast<std::int8_t>(std::clamp(q, T{-127}, T{127}));
      }
    };
    if (std::isfinite(inverse)) {
      encode_row(inverse);
    } else {
      // A row of subnormal values: 1 / scale overflows to inf and 0 * inf would be NaN,
      // whose conversion to int8 is undefined. In double the inverse stays finite.
      encode_row(127.0 / static_cast<double>(max_abs));
    }
  }
}

void binarize(const float* x, std::size_t n, std::size_t d, std::uint8_t* out) {
  const std::size_t bytes = binary_bytes(d);
  std::memset(out, 0, n * bytes);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < d; ++j) {
      if (x[i * d + j] > 0.0f) out[i * bytes + j / 8] |= static_cast<std::uint8_t>(1u << (j % 8));
    }
  }
}

Database Database::encode(const float* rows, std::size_t n, std::size_t d, Storage storage) {
  if (n == 0) throw std::invalid_argument("cannot encode an empty set of descriptors");
  if (d == 0) throw std::invalid_argument("descriptors must have dimension > 0");
  for (std::size_t i = 0; i < n * d; ++i) {
    if (!std::isfinite(rows[i])) {
      throw std::invalid_argument("descriptor " + std::to_string(i / d) +
                                  " has a non-finite value (NaN or inf)");
    }
  }
  Database db;
  db.storage_ = storage;
  db.count_ = n;
  db.dim_ = d;
  switch (storage) {
    case Storage::Float32:
      db.codes_.resize(n * d * sizeof(float));
      std::memcpy(db.codes_.data(), rows, db.codes_.size());
      break;
    case Storage::Float16:
      db.codes_.resize(n * d * sizeof(std::uint16_t));
      encode_float16(rows, n, d, reinterpret_cast<std::uint16_t*>(db.codes_.data()));
      break;
    case Storage::Int8:
      db.codes_.resize(n * d);
      db.scales_.resize(n);
      quantize_int8(rows, n, d, reinterpret_cast<std::int8_t*>(db.codes_.data()),
                    db.scales_.data());
      break;
    case Storage::Binary:
      db.codes_.resize(n * binary_bytes(d));
      binarize(rows, n, d, db.codes_.data());
      break;
    default:
      throw std::invalid_argument("unknown storage type");
  }
  return db;
}

DatabaseView Database::view() const {
  DatabaseView v;
  v.storage = storage_;
  v.count = count_;
  v.dim = dim_;
  v.codes = codes_.data();
  v.scales = scales_.empty() ? nullptr : scales_.data();
  return v;
}

}  // namespace vpr
