// manifest.json reading and validation (nlohmann/json), mirroring vpr_embedded/bundle.py.
#include "vpr/manifest.hpp"

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>

namespace vpr {
namespace {

constexpr const char* kFormat = "vpr-embedded-bundle";
constexpr int kVersion = 1;
constexpr const char* kResize = "pil-bilinear";

using nlohmann::json;

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::runtime_error(where + ": " + what + "; re-export the bundle");
}

const json& field(const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key))
    fail(where, std::string("manifest lacks '") + key + "'");
  return obj.at(key);
}

std::string get_string(const json& obj, const char* key, const std::string& where) {
  const json& v = field(obj, key, where);
  if (!v.is_string()) fail(where, std::string("manifest field '") + key + "' must be a string");
  return v.get<std::string>();
}

long long get_int(const json& obj, const char* key, const std::string& where) {
  const json& v = field(obj, key, where);
  if (!v.is_number_integer())
    fail(where, std::string("manifest field '") + key + "' must be an integer");
  return v.get<long long>();
}

std::array<float, 3> get_floats3(const json& obj, const char* key, const std::string& where,
                                 bool positive) {
  const json& v = field(obj, key, where);
  if (!v.is_array() || v.size() != 3) fail(where, std::string("'") + key + "' must hold 3 numbers");
  std::array<float, 3> out{};
  for (std::size_t i = 0; i < 3; ++i) {
    if (!v[i].is_number()) fail(where, std::string("'") + key + "' must hold 3 numbers");
    const double d = v[i].get<double>();
    if (!std::isfinite(d) || (positive && d <= 0)) {
      fail(where, std::string("'") + key + "' must hold finite" + (positive ? " positive" : "") +
                      " numbers");
    }
    out[i] = static_cast<float>(d);
  }
  return out;
}

}  // namespace

BundleManifest BundleManifest::parse(const std::string& text, const std::string& where) {
  // The rule of every manifest reader (Python's json.loads refuses it too): JSON text
  // without a byte order mark, as RFC 8259 asks of writers.
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) {
    fail(where, "the manifest starts with a UTF-8 byte order mark, which JSON does not allow");
  }
  json d;
  try {
    d = json::parse(text);
  } catch (const json::exception& e) {
    fail(where, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!d.is_object()) fail(where, "the manifest must be a JSON object");
  BundleManifest m;
  if (get_string(d, "format", where) != kFormat) fail(where, "not a vpr-embedded bundle manifest");
  const long long version = get_int(d, "format_version", where);
  if (version != kVersion) {
    fail(where, "bundle format version " + std::to_string(version) +
                    " is not supported (reader: " + std::to_string(kVersion) + ")");
  }
  m.model_name = get_string(d, "model_name", where);
  if (!field(d, "model_config", where).is_object()) fail(where, "model_config must be an object");
  const json& in = field(d, "input", where);
  const long long h = get_int(in, "height", where);
  const long long w = get_int(in, "width", where);
  if (h <= 0 || w <= 0 || h > 8192 || w > 8192) fail(where, "input size out of range");
  m.height = static_cast<int>(h);
  m.width = static_cast<int>(w);
  const std::string colour = get_string(in, "colour_order", where);
  if (colour != "RGB" && colour != "BGR") fail(where, "colour_order must be RGB or BGR");
  m.bgr = colour == "BGR";
  if (get_string(in, "resize", where) != kResize) fail(where, "unknown resize method");
  m.mean = get_floats3(in, "mean", where, false);
  m.std = get_floats3(in, "std", where, true);
  if (const auto r = in.find("rotate_180"); r != in.end()) {
    if (!r->is_boolean()) fail(where, "input.rotate_180 must be true or false");
    m.rotate_180 = r->get<bool>();
  }
  const long long dim = get_int(d, "descriptor_dim", where);
  if (dim <= 0) fail(where, "descriptor_dim must be positive");
  m.descriptor_dim = static_cast<std::size_t>(dim);
  m.quantization = get_string(field(d, "quantization", where), "mode", where);
  const json& pte = field(d, "pte", where);
  m.pte_file = get_string(pte, "file", where);
  if (m.pte_file.empty() || m.pte_file == "." || m.pte_file == ".." ||
      m.pte_file.find('/') != std::string::npos || m.pte_file.find('\\') != std::string::npos) {
    fail(where, "pte.file must be a plain file name");
  }
  m.pte_sha256 = get_string(pte, "sha256", where);
  if (m.pte_sha256.size() != 64 ||
      m.pte_sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
    fail(where, "pte.sha256 is not a lower-case sha256 hex digest");
  }
  const long long bytes = get_int(pte, "bytes", where);
  if (bytes < 0) fail(where, "pte.bytes must be >= 0");
  m.pte_bytes = static_cast<std::uint64_t>(bytes);
  return m;
}

BundleManifest BundleManifest::load(const std::string& dir, bool check_pte) {
  const std::string path = dir + "/manifest.json";
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(dir + " is not a model bundle: cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  BundleManifest m = parse(ss.str(), path);
  if (check_pte) {
    const std::string pte = dir + "/" + m.pte_file;
    struct stat st {};
    if (::stat(pte.c_str(), &st) != 0)
      throw std::runtime_error(dir + ": program file " + m.pte_file + " is missing");
    if (static_cast<std::uint64_t>(st.st_size) != m.pte_bytes) {
      throw std::runtime_error(pte + " has " + std::to_string(st.st_size) +
                               " bytes, the manifest says " + std::to_string(m.pte_bytes) +
                               ": the program or the manifest was modified; re-export the bundle");
    }
    const std::string digest = sha256_file_hex(pte);
    if (digest != m.pte_sha256) {
      throw std::runtime_error(
          pte + ": sha256 " + digest.substr(0, 16) + "... does not match the manifest's " +
          m.pte_sha256.substr(0, 16) +
          "...: the program or the manifest was modified; re-export the bundle");
    }
  }
  return m;
}

}  // namespace vpr
