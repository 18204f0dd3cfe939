// The only file that includes pybind11. Built twice: vpr_embedded._core (matching, maps,
// sequences; always) and, with VPR_BINDINGS_LOCALIZER when the ExecuTorch C++ runtime is
// present, vpr_embedded._localizer (the on-device localizer: bundle + map -> places).
// Arrays are taken without copies (C-contiguous, exact dtype) and the GIL is
// released while searching.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "vpr/kernel_tuning.hpp"
#include "vpr/manifest.hpp"
#include "vpr/map_file.hpp"
#include "vpr/map_writer.hpp"
#include "vpr/matcher.hpp"
#include "vpr/pq.hpp"
#include "vpr/sequence.hpp"
#include "vpr/simd.hpp"
#if defined(VPR_BINDINGS_LOCALIZER)
#include "vpr/localizer.hpp"
#endif

namespace py = pybind11;

namespace {

vpr::Storage parse_storage(const std::string& name) {
  for (vpr::Storage s :
       {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8, vpr::Storage::Binary}) {
    if (name == vpr::storage_name(s)) return s;
  }
  throw std::invalid_argument("unknown storage '" + name +
                              "'; use one of: float32, float16, int8, binary");
}

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// A C-contiguous array of exactly dtype T and the given number of dimensions.
template <typename T>
void require(const py::array& a, const char* what, py::ssize_t ndim, const char* expected) {
  if (!a.dtype().is(py::dtype::of<T>())) {
    throw std::invalid_argument(std::string(what) + " must have dtype " + expected + ", got " +
                                dtype_name(a));
  }
  if (a.ndim() != ndim) {
    throw std::invalid_argument(std::string(what) + " must be a " + std::to_string(ndim) +
                                "-D array, got shape with " + std::to_string(a.ndim()) +
                                " dimensions");
  }
  if (!(a.flags() & py::array::c_style)) {
    throw std::invalid_argument(std::string(what) +
                                " must be C-contiguous (use numpy.ascontiguousarray)");
  }
}

// (ids, scores) numpy arrays of shape (queries, k).
py::tuple results_to_numpy(const vpr::SearchResults& r) {
  const auto nq = static_cast<py::ssize_t>(r.num_queries);
  const auto k = static_cast<py::ssize_t>(r.k);
  py::array_t<std::int64_t> ids({nq, k});
  py::array_t<float> scores({nq, k});
  if (!r.ids.empty()) {
    std::memcpy(ids.mutable_data(), r.ids.data(), r.ids.size() * sizeof(std::int64_t));
    std::memcpy(scores.mutable_data(), r.scores.data(), r.scores.size() * sizeof(float));
  }
  return py::make_tuple(ids, scores);
}

// Zero-copy database over numpy buffers; keeps them alive.
class PyIndex {
 public:
  PyIndex(py::array codes, const std::string& storage, std::size_t dim,
          std::optional<py::array> scales)
      : codes_(std::move(codes)) {
    view_.storage = parse_storage(storage);
    switch (view_.storage) {
      case vpr::Storage::Float32:
        require<float>(codes_, "float32 descriptors", 2, "float32");
        break;
      case vpr::Storage::Float16:
        if (!codes_.dtype().is(py::dtype("float16")) &&
            !codes_.dtype().is(py::dtype::of<std::uint16_t>())) {
          throw std::invalid_argument("float16 descriptors must have dtype float16, got " +
                                      dtype_name(codes_));
        }
        if (codes_.ndim() != 2 || !(codes_.flags() & py::array::c_style)) {
          throw std::invalid_argument("float16 descriptors must be a C-contiguous 2-D array");
        }
        break;
      case vpr::Storage::Int8:
        require<std::int8_t>(codes_, "int8 descriptors", 2, "int8");
        break;
      case vpr::Storage::Binary:
        require<std::uint8_t>(codes_, "binary codes", 2, "uint8 (packed sign bits)");
        break;
      case vpr::Storage::Pq4:  // parse_storage never returns it: PQ lives in maps only
        break;
    }
    const std::size_t rows = static_cast<std::size_t>(codes_.shape(0));
    const std::size_t cols = static_cast<std::size_t>(codes_.shape(1));
    view_.count = rows;
    view_.dim = view_.storage == vpr::Storage::Binary ? dim : cols;
    if (view_.storage == vpr::Storage::Binary) {
      if (dim == 0 || vpr::binary_bytes(dim) != cols) {
        throw std::invalid_argument("binary codes of " + std::to_string(cols) +
                                    " bytes per row cannot hold dimension " + std::to_string(dim));
      }
    } else if (dim != 0 && dim != cols) {
      throw std::invalid_argument("descriptors have dimension " + std::to_string(cols) +
                                  ", expected " + std::to_string(dim));
    }
    view_.codes = codes_.data();
    if (view_.storage == vpr::Storage::Int8) {
      if (!scales)
        throw std::invalid_argument("an int8 database needs one float32 scale per place");
      scales_ = *scales;
      require<float>(scales_, "int8 scales", 1, "float32");
      if (static_cast<std::size_t>(scales_.shape(0)) != rows) {
        throw std::invalid_argument("got " + std::to_string(scales_.shape(0)) + " scales for " +
                                    std::to_string(rows) + " places");
      }
      view_.scales = static_cast<const float*>(scales_.data());
    } else if (scales) {
      throw std::invalid_argument("scales are only used with int8 storage");
    }
    // NaN codes or scales would give NaN scores and unsorted results. (An empty index is
    // refused when it is searched, as before.)
    if (view_.count > 0) view_.check_values();
  }

  py::tuple search(py::array queries, std::size_t k, int threads, std::optional<py::array> matrix,
                   std::optional<py::array> mean, std::size_t shortlist,
                   const PyIndex* rerank_index) const {
    require<float>(queries, "queries", 2, "float32");
    vpr::SearchOptions opt = options(k, threads);
    if (matrix) {
      require<float>(*matrix, "projection matrix", 2, "float32");
      opt.projection.matrix = static_cast<const float*>(matrix->data());
      opt.projection.in_dim = static_cast<std::size_t>(matrix->shape(0));
      opt.projection.out_dim = static_cast<std::size_t>(matrix->shape(1));
      if (mean) {
        require<float>(*mean, "projection mean", 1, "float32");
        if (static_cast<std::size_t>(mean->shape(0)) != opt.projection.in_dim) {
          throw std::invalid_argument("projection mean has " + std::to_string(mean->shape(0)) +
                                      " values, expected " + std::to_string(opt.projection.in_dim));
        }
        opt.projection.mean = static_cast<const float*>(mean->data());
      }
    } else if (mean) {
      throw std::invalid_argument("a projection mean needs a projection matrix");
    }
    if (rerank_index != nullptr) {
      opt.rerank = &rerank_index->view_;
      opt.shortlist = shortlist;
      if (shortlist == 0) throw std::invalid_argument("two-stage search needs shortlist >= 1");
    }
    const auto* q = static_cast<const float*>(queries.data());
    const auto nq = static_cast<std::size_t>(queries.shape(0));
    const auto qd = static_cast<std::size_t>(queries.shape(1));
    vpr::SearchResults r;
    {
      py::gil_scoped_release release;
      r = vpr::search(view_, q, nq, qd, opt);
    }
    return results_to_numpy(r);
  }

  py::tuple search_int8(py::array queries, py::array query_scales, std::size_t k,
                        int threads) const {
    require<std::int8_t>(queries, "int8 queries", 2, "int8");
    require<float>(query_scales, "query scales", 1, "float32");
    if (query_scales.shape(0) != queries.shape(0)) {
      throw std::invalid_argument("need one scale per int8 query");
    }
    const vpr::SearchOptions opt = options(k, threads);
    const auto* q = static_cast<const std::int8_t*>(queries.data());
    const auto* s = static_cast<const float*>(query_scales.data());
    const auto nq = static_cast<std::size_t>(queries.shape(0));
    const auto qd = static_cast<std::size_t>(queries.shape(1));
    vpr::SearchResults r;
    {
      py::gil_scoped_release release;
      r = vpr::search_int8(view_, q, s, nq, qd, opt);
    }
    return results_to_numpy(r);
  }

  std::size_t count() const { return view_.count; }
  std::size_t dim() const { return view_.dim; }
  std::string storage() const { return vpr::storage_name(view_.storage); }
  std::size_t nbytes() const {
    return view_.count * view_.row_bytes() +
           (view_.storage == vpr::Storage::Int8 ? view_.count * sizeof(float) : 0);
  }

 private:
  vpr::SearchOptions options(std::size_t k, int threads) const {
    if (view_.count == 0) {
      throw std::invalid_argument("the database is empty: add at least one place before searching");
    }
    vpr::SearchOptions opt;
    opt.k = k;
    opt.num_threads = threads;
    return opt;
  }

  py::array codes_;
  py::array scales_;
  vpr::DatabaseView view_;
};

// Encode float32 rows: returns (codes, scales or None).
// Unit rows as every map writer makes them (vpr::normalise_rows: C++ and Python maps of
// the same descriptors are the same bytes). Raises ValueError for a zero or non-finite row.
py::array_t<float> normalise_rows(py::array rows) {
  require<float>(rows, "descriptors", 2, "float32");
  const auto n = static_cast<std::size_t>(rows.shape(0));
  const auto d = static_cast<std::size_t>(rows.shape(1));
  py::array_t<float> out({rows.shape(0), rows.shape(1)});
  const auto* x = static_cast<const float*>(rows.data());
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    vpr::normalise_rows(x, n, d, o);
  }
  return out;
}

py::tuple encode(py::array rows, const std::string& storage_name) {
  require<float>(rows, "descriptors", 2, "float32");
  const vpr::Storage storage = parse_storage(storage_name);
  const auto n = static_cast<std::size_t>(rows.shape(0));
  const auto d = static_cast<std::size_t>(rows.shape(1));
  const auto* x = static_cast<const float*>(rows.data());
  vpr::Database db;
  {
    py::gil_scoped_release release;
    db = vpr::Database::encode(x, n, d, storage);
  }
  const auto sn = static_cast<py::ssize_t>(n);
  const auto bytes = db.codes();
  py::array codes;
  switch (storage) {
    case vpr::Storage::Float32:
      codes = py::array_t<float>({sn, static_cast<py::ssize_t>(d)});
      break;
    case vpr::Storage::Float16:
      codes = py::array(py::dtype("float16"), {sn, static_cast<py::ssize_t>(d)});
      break;
    case vpr::Storage::Int8:
      codes = py::array_t<std::int8_t>({sn, static_cast<py::ssize_t>(d)});
      break;
    case vpr::Storage::Binary:
      codes = py::array_t<std::uint8_t>({sn, static_cast<py::ssize_t>(vpr::binary_bytes(d))});
      break;
    case vpr::Storage::Pq4:  // parse_storage never returns it
      throw std::invalid_argument("PQ codes are built with a map (vpr_embedded.pq)");
  }
  std::memcpy(codes.mutable_data(), bytes.data(), bytes.size());
  if (storage != vpr::Storage::Int8) return py::make_tuple(codes, py::none());
  py::array_t<float> scales(sn);
  std::memcpy(scales.mutable_data(), db.scales().data(), n * sizeof(float));
  return py::make_tuple(codes, scales);
}

// A validated manifest's fields for Python (vpr_embedded.manifest.Manifest).
py::dict manifest_dict(const vpr::BundleManifest& m) {
  py::dict d;
  d["model_name"] = m.model_name;
  d["height"] = m.height;
  d["width"] = m.width;
  d["colour_order"] = m.bgr ? "BGR" : "RGB";
  d["rotate_180"] = m.rotate_180;
  d["mean"] = py::make_tuple(m.mean[0], m.mean[1], m.mean[2]);
  d["std"] = py::make_tuple(m.std[0], m.std[1], m.std[2]);
  d["descriptor_dim"] = m.descriptor_dim;
  d["quantization"] = m.quantization;
  d["pte_file"] = m.pte_file;
  d["pte_sha256"] = m.pte_sha256;
  d["pte_bytes"] = m.pte_bytes;
  return d;
}

// The manifest reader's refusals (std::runtime_error) as ValueError.
template <typename F>
vpr::BundleManifest checked(F&& read) {
  try {
    return read();
  } catch (const std::runtime_error& e) {
    throw py::value_error(e.what());
  }
}

// ---------------------------------------------------------------------------
// Map files and sequence matching (csrc/include/vpr/map_file.hpp, sequence.hpp),
// registered by register_maps_and_sequences().
// ---------------------------------------------------------------------------

// An open map file (memory-mapped, or read into owned memory below the copy limit); numpy
// arrays it hands out are read-only views into its bytes and keep this object alive.
class PyMapFile {
 public:
  PyMapFile(const std::string& path, bool verify_checksum, std::size_t copy_limit_bytes) {
    vpr::MapOpenOptions opt;
    opt.verify_checksum = verify_checksum;
    opt.copy_limit_bytes = copy_limit_bytes;
    py::gil_scoped_release release;
    file_ = vpr::MapFile::open(path, opt);
  }

  const vpr::MapFileView& map() const { return file_.map(); }
  bool memory_mapped() const { return file_.memory_mapped(); }

  // near: (x, y) with radius, the position prior; nprobe / shortlist 0: the map's defaults.
  py::tuple search(py::array queries, std::size_t k, int threads, py::object near,
                   py::object radius, std::size_t nprobe, std::size_t shortlist) const {
    require<float>(queries, "queries", 2, "float32");
    vpr::SearchOptions opt;
    opt.k = k;
    opt.num_threads = threads;
    opt.nprobe = nprobe;
    opt.shortlist = shortlist;
    if (near.is_none() != radius.is_none()) {
      throw std::invalid_argument("near=(x, y) and radius go together");
    }
    std::vector<std::uint32_t> candidates;
    const auto* q = static_cast<const float*>(queries.data());
    const auto nq = static_cast<std::size_t>(queries.shape(0));
    const auto qd = static_cast<std::size_t>(queries.shape(1));
    vpr::SearchResults r;
    if (!near.is_none()) {
      const auto xy = near.cast<std::pair<double, double>>();
      const double rad = radius.cast<double>();
      py::gil_scoped_release release;
      candidates = map().places_near(xy.first, xy.second, rad);
      opt.restrict_to_candidates = true;
      opt.candidates = candidates.data();
      opt.num_candidates = candidates.size();
      r = map().search(q, nq, qd, opt);
    } else {
      py::gil_scoped_release release;
      r = map().search(q, nq, qd, opt);
    }
    return results_to_numpy(r);
  }

  py::array places_near(double x, double y, double radius) const {
    std::vector<std::uint32_t> ids;
    {
      py::gil_scoped_release release;
      ids = map().places_near(x, y, radius);
    }
    py::array_t<std::uint32_t> out(static_cast<py::ssize_t>(ids.size()));
    if (!ids.empty()) std::memcpy(out.mutable_data(), ids.data(), ids.size() * 4);
    return out;
  }

  // Read-only array of `shape` over `ptr` (inside the mapping), owned by `self`.
  static py::object view_array(py::object self, py::dtype dtype, std::vector<py::ssize_t> shape,
                               const void* ptr) {
    if (ptr == nullptr) return py::none();
    py::array a(dtype, shape, ptr, self);
    a.attr("setflags")(py::arg("write") = false);
    return a;
  }

 private:
  vpr::MapFile file_;
};

py::object map_codes(py::object self) {
  const auto& m = self.cast<const PyMapFile&>().map();
  const auto n = static_cast<py::ssize_t>(m.count());
  const auto& v = m.view();
  switch (v.storage) {
    case vpr::Storage::Float32:
      return PyMapFile::view_array(self, py::dtype::of<float>(),
                                   {n, static_cast<py::ssize_t>(v.dim)}, v.codes);
    case vpr::Storage::Float16:
      return PyMapFile::view_array(self, py::dtype("float16"), {n, static_cast<py::ssize_t>(v.dim)},
                                   v.codes);
    case vpr::Storage::Int8:
      return PyMapFile::view_array(self, py::dtype::of<std::int8_t>(),
                                   {n, static_cast<py::ssize_t>(v.dim)}, v.codes);
    case vpr::Storage::Binary:
      break;
    case vpr::Storage::Pq4:  // a PQ map without re-rank codes has no rows
      return py::none();
  }
  return PyMapFile::view_array(self, py::dtype::of<std::uint8_t>(),
                               {n, static_cast<py::ssize_t>(vpr::binary_bytes(v.dim))}, v.codes);
}

// Online sequence matcher over a MapFile (stored projection applied) or over
// encoded arrays (kept alive by an internal Index).
class PySequenceMatcher {
 public:
  PySequenceMatcher(py::object database, std::size_t length, float v_min, float v_max,
                    std::size_t v_steps, std::size_t contrast_window, std::size_t k, int threads)
      : owner_(std::move(database)) {
    opt_.length = length;
    opt_.v_min = v_min;
    opt_.v_max = v_max;
    opt_.v_steps = v_steps;
    opt_.contrast_window = contrast_window;
    opt_.k = k;
    opt_.num_threads = threads;
    if (py::isinstance<PyMapFile>(owner_)) {
      const auto& m = owner_.cast<const PyMapFile&>().map();
      db_ = m.view();
      projection_ = m.projection();
      input_dim_ = m.input_dim();
    } else {
      throw std::invalid_argument(
          "SequenceMatcher needs a MapFile; over descriptors, use "
          "vpr_embedded.sequence.SequenceMatcher.from_descriptors");
    }
    matcher_ = std::make_unique<vpr::SequenceMatcher>(db_, opt_, projection_);
  }

  // Over encoded arrays (as Index takes them): copies nothing, keeps them alive.
  PySequenceMatcher(py::array codes, const std::string& storage, std::size_t dim,
                    std::optional<py::array> scales, std::size_t length, float v_min, float v_max,
                    std::size_t v_steps, std::size_t contrast_window, std::size_t k, int threads)
      : owner_(py::make_tuple(codes, scales ? py::object(*scales) : py::object(py::none()))) {
    opt_.length = length;
    opt_.v_min = v_min;
    opt_.v_max = v_max;
    opt_.v_steps = v_steps;
    opt_.contrast_window = contrast_window;
    opt_.k = k;
    opt_.num_threads = threads;
    index_ = std::make_unique<PyIndex>(codes, storage, dim, scales);  // validates
    db_.storage = parse_storage(storage);
    db_.count = index_->count();
    db_.dim = index_->dim();
    db_.codes = codes.data();
    db_.scales = scales ? static_cast<const float*>(scales->data()) : nullptr;
    input_dim_ = db_.dim;
    matcher_ = std::make_unique<vpr::SequenceMatcher>(db_, opt_, projection_);
  }

  // push, reset and the state readers take state_ after releasing the GIL: the online
  // state (the score window) is shared, and two threads pushing while a third resets
  // gave -inf scores before it was guarded.
  // candidates (uint32 place ids, sorted): the position prior's window for this frame.
  py::tuple push(py::array query, py::object candidates) {
    require<float>(query, "query", 1, "float32");
    check_dim(static_cast<std::size_t>(query.shape(0)));
    vpr::SearchResults r;
    if (!candidates.is_none()) {
      const auto ids = candidates.cast<py::array>();
      require<std::uint32_t>(ids, "candidate places", 1, "uint32");
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(state_);
      r = matcher_->push(static_cast<const float*>(query.data()), input_dim_,
                         static_cast<const std::uint32_t*>(ids.data()),
                         static_cast<std::size_t>(ids.shape(0)));
    } else {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(state_);
      r = matcher_->push(static_cast<const float*>(query.data()), input_dim_);
    }
    py::tuple t = results_to_numpy(r);
    return py::make_tuple(t[0].attr("reshape")(-1), t[1].attr("reshape")(-1));
  }

  // Batch: row j uses frames j-L+1 .. j of `queries` (a fresh sequence; the
  // online state is not touched).
  py::tuple match(py::array queries) const {
    require<float>(queries, "queries", 2, "float32");
    check_dim(static_cast<std::size_t>(queries.shape(1)));
    vpr::SearchResults r;
    {
      py::gil_scoped_release release;
      r = vpr::sequence_search(db_, static_cast<const float*>(queries.data()),
                               static_cast<std::size_t>(queries.shape(0)), input_dim_, opt_,
                               projection_);
    }
    return results_to_numpy(r);
  }

  void reset() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(state_);
    matcher_->reset();
  }
  std::size_t frames() const {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(state_);
    return matcher_->scorer().frames();
  }
  std::size_t count() const { return db_.count; }
  std::size_t input_dim() const { return input_dim_; }
  py::array sequence_scores() const {
    std::vector<float> copy;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(state_);
      copy = matcher_->scorer().sequence_scores();
    }
    py::array_t<float> out(static_cast<py::ssize_t>(copy.size()));
    std::memcpy(out.mutable_data(), copy.data(), copy.size() * sizeof(float));
    return out;
  }

 private:
  void check_dim(std::size_t d) const {
    if (d != input_dim_) {
      throw std::invalid_argument("queries have dimension " + std::to_string(d) +
                                  ", the sequence matcher expects " + std::to_string(input_dim_));
    }
  }

  py::object owner_;
  std::unique_ptr<PyIndex> index_;
  vpr::DatabaseView db_;
  vpr::Projection projection_;
  std::size_t input_dim_ = 0;
  vpr::SequenceOptions opt_;
  std::unique_ptr<vpr::SequenceMatcher> matcher_;
  mutable std::mutex state_;
};

// Batch sequence matching over a score matrix (queries x places, float32).
py::tuple sequence_match_scores(py::array scores, std::size_t length, float v_min, float v_max,
                                std::size_t v_steps, std::size_t contrast_window, std::size_t k) {
  require<float>(scores, "scores", 2, "float32");
  vpr::SequenceOptions opt;
  opt.length = length;
  opt.v_min = v_min;
  opt.v_max = v_max;
  opt.v_steps = v_steps;
  opt.contrast_window = contrast_window;
  opt.k = k;
  vpr::SearchResults r;
  {
    py::gil_scoped_release release;
    r = vpr::sequence_search_scores(static_cast<const float*>(scores.data()),
                                    static_cast<std::size_t>(scores.shape(0)),
                                    static_cast<std::size_t>(scores.shape(1)), opt);
  }
  return results_to_numpy(r);
}

void register_maps_and_sequences(py::module_& m) {
  m.attr("MAP_FORMAT_VERSION") = vpr::kMapFormatVersion;
  m.attr("MAP_COPY_LIMIT_BYTES") = vpr::kMapCopyLimitBytes;
  py::class_<PyMapFile>(m, "MapFile")
      .def(py::init<const std::string&, bool, std::size_t>(), py::arg("path"),
           py::arg("verify_checksum") = true, py::arg("copy_limit_bytes") = vpr::kMapCopyLimitBytes)
      .def_property_readonly("memory_mapped", &PyMapFile::memory_mapped)
      .def("search", &PyMapFile::search, py::arg("queries"), py::arg("k"), py::arg("threads") = 0,
           py::arg("near") = py::none(), py::arg("radius") = py::none(), py::arg("nprobe") = 0,
           py::arg("shortlist") = 0)
      .def("places_near", &PyMapFile::places_near, py::arg("x"), py::arg("y"), py::arg("radius"))
      .def_property_readonly(
          "pq_info",
          [](const PyMapFile& f) -> py::object {
            const vpr::PqView* pq = f.map().pq();
            if (pq == nullptr) return py::none();
            py::dict d;
            d["m"] = pq->m;
            d["blocks"] = pq->blocks;
            d["code_bytes"] = pq->code_bytes();
            d["nlist"] = pq->ivf.nlist;
            d["nprobe"] = f.map().default_nprobe();
            d["rerank"] = f.map().has_rerank_codes()
                              ? py::object(py::str(vpr::storage_name(f.map().view().storage)))
                              : py::object(py::none());
            return d;
          })
      .def("name", [](const PyMapFile& f, std::size_t i) { return std::string(f.map().name(i)); })
      .def_property_readonly("names",
                             [](const PyMapFile& f) -> py::object {
                               const auto& m = f.map();
                               if (!m.has_names()) return py::none();
                               py::list out(m.count());
                               for (std::size_t i = 0; i < m.count(); ++i) {
                                 const auto s = m.name(i);
                                 out[i] = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(
                                     s.data(), static_cast<py::ssize_t>(s.size()), "replace"));
                               }
                               return out;
                             })
      .def_property_readonly("count", [](const PyMapFile& f) { return f.map().count(); })
      .def_property_readonly("dim", [](const PyMapFile& f) { return f.map().dim(); })
      .def_property_readonly("input_dim", [](const PyMapFile& f) { return f.map().input_dim(); })
      .def_property_readonly(
          "storage", [](const PyMapFile& f) { return vpr::storage_name(f.map().storage()); })
      .def_property_readonly("format_version",
                             [](const PyMapFile& f) { return f.map().format_version(); })
      .def_property_readonly("nbytes", [](const PyMapFile& f) { return f.map().file_size(); })
      .def_property_readonly("checksum", [](const PyMapFile& f) { return f.map().checksum(); })
      .def_property_readonly("model_sha256",
                             [](const PyMapFile& f) { return f.map().model_sha256_hex(); })
      .def_property_readonly("model_name", [](const PyMapFile& f) { return f.map().model_name(); })
      .def_property_readonly(
          "position_kind",
          [](const PyMapFile& f) { return vpr::position_kind_name(f.map().position_kind()); })
      .def_property_readonly("codes", &map_codes)
      .def_property_readonly("scales",
                             [](py::object self) {
                               const auto& m = self.cast<const PyMapFile&>().map();
                               return PyMapFile::view_array(self, py::dtype::of<float>(),
                                                            {static_cast<py::ssize_t>(m.count())},
                                                            m.view().scales);
                             })
      .def_property_readonly("projection",
                             [](py::object self) {
                               const auto& p = self.cast<const PyMapFile&>().map().projection();
                               return PyMapFile::view_array(self, py::dtype::of<float>(),
                                                            {static_cast<py::ssize_t>(p.in_dim),
                                                             static_cast<py::ssize_t>(p.out_dim)},
                                                            p.matrix);
                             })
      .def_property_readonly("projection_mean",
                             [](py::object self) {
                               const auto& p = self.cast<const PyMapFile&>().map().projection();
                               return PyMapFile::view_array(self, py::dtype::of<float>(),
                                                            {static_cast<py::ssize_t>(p.in_dim)},
                                                            p.mean);
                             })
      .def_property_readonly("positions",
                             [](py::object self) {
                               const auto& m = self.cast<const PyMapFile&>().map();
                               return PyMapFile::view_array(
                                   self, py::dtype::of<double>(),
                                   {static_cast<py::ssize_t>(m.count()), 2}, m.positions());
                             })
      .def_property_readonly("timestamps", [](py::object self) {
        const auto& m = self.cast<const PyMapFile&>().map();
        return PyMapFile::view_array(self, py::dtype::of<double>(),
                                     {static_cast<py::ssize_t>(m.count())}, m.timestamps());
      });

  py::class_<PySequenceMatcher>(m, "SequenceMatcher")
      .def(py::init<py::object, std::size_t, float, float, std::size_t, std::size_t, std::size_t,
                    int>(),
           py::arg("map"), py::arg("length") = 10, py::arg("v_min") = 0.8f,
           py::arg("v_max") = 1.25f, py::arg("v_steps") = 5, py::arg("contrast_window") = 10,
           py::arg("k") = 5, py::arg("threads") = 1)
      .def(py::init<py::array, const std::string&, std::size_t, std::optional<py::array>,
                    std::size_t, float, float, std::size_t, std::size_t, std::size_t, int>(),
           py::arg("codes"), py::arg("storage"), py::arg("dim"), py::arg("scales"),
           py::arg("length") = 10, py::arg("v_min") = 0.8f, py::arg("v_max") = 1.25f,
           py::arg("v_steps") = 5, py::arg("contrast_window") = 10, py::arg("k") = 5,
           py::arg("threads") = 1)
      .def("push", &PySequenceMatcher::push, py::arg("query"), py::arg("candidates") = py::none())
      .def("match", &PySequenceMatcher::match, py::arg("queries"))
      .def("reset", &PySequenceMatcher::reset)
      .def("sequence_scores", &PySequenceMatcher::sequence_scores)
      .def_property_readonly("frames", &PySequenceMatcher::frames)
      .def_property_readonly("count", &PySequenceMatcher::count)
      .def_property_readonly("input_dim", &PySequenceMatcher::input_dim);

  m.def(
      "pack_pq4_codes",
      [](py::array codes) {
        require<std::uint8_t>(codes, "PQ codes", 2, "uint8");
        const auto n = static_cast<std::size_t>(codes.shape(0));
        const auto mm = static_cast<std::size_t>(codes.shape(1));
        std::vector<std::uint8_t> packed;
        {
          py::gil_scoped_release release;
          packed = vpr::pack_pq4_codes(static_cast<const std::uint8_t*>(codes.data()), n, mm);
        }
        py::array_t<std::uint8_t> out(static_cast<py::ssize_t>(packed.size()));
        if (!packed.empty()) std::memcpy(out.mutable_data(), packed.data(), packed.size());
        return out;
      },
      py::arg("codes"),
      "Packs n x m 4-bit PQ codes (uint8 values 0..15) into the fast-scan block layout.");
  m.attr("PQ_BLOCK") = vpr::kPqBlock;
  m.def("sequence_match_scores", &sequence_match_scores, py::arg("scores"), py::arg("length") = 10,
        py::arg("v_min") = 0.8f, py::arg("v_max") = 1.25f, py::arg("v_steps") = 5,
        py::arg("contrast_window") = 10, py::arg("k") = 5);
  m.def(
      "map_crc32",
      [](py::bytes data, std::uint32_t crc) {
        const std::string s = data;
        return vpr::crc32(s.data(), s.size(), crc);
      },
      py::arg("data"), py::arg("crc") = 0);
}

}  // namespace

#if defined(VPR_BINDINGS_LOCALIZER)

namespace {

// A bundle + a map, run by the ExecuTorch C++ runtime and vpr_core: an RGB8 frame
// (height, width, 3) uint8 in, the top-k places and the stage times out.
class PyLocalizer {
 public:
  PyLocalizer(const std::string& bundle, const std::string& map, int threads, std::size_t k,
              bool verify_map_checksum, bool allow_model_mismatch) {
    vpr::LocalizerOptions options;
    options.threads = threads;
    options.k = k;
    options.verify_map_checksum = verify_map_checksum;
    options.allow_model_mismatch = allow_model_mismatch;
    py::gil_scoped_release release;
    localizer_ = std::make_unique<vpr::Localizer>(bundle, map, options);
  }

  py::dict localize(py::array frame) {
    const vpr::ImageView view = frame_view(frame);
    vpr::FrameTiming t;
    std::vector<vpr::PlaceMatch> found;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);  // one runtime state per localizer
      found = localizer_->localize(view, &t);
    }
    py::list ids, scores, names;
    for (const auto& m : found) {
      ids.append(m.id);
      scores.append(m.score);
      names.append(m.name);
    }
    py::dict out;
    out["ids"] = ids;
    out["scores"] = scores;
    out["names"] = names;
    out["preprocess_ms"] = t.preprocess_ms;
    out["inference_ms"] = t.inference_ms;
    out["match_ms"] = t.match_ms;
    return out;
  }

  py::array_t<float> embed(py::array frame) {
    const vpr::ImageView view = frame_view(frame);
    std::vector<float> d;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      d = localizer_->extractor().embed(view);
    }
    py::array_t<float> out(static_cast<py::ssize_t>(d.size()));
    std::memcpy(out.mutable_data(), d.data(), d.size() * sizeof(float));
    return out;
  }

  std::size_t descriptor_dim() { return localizer_->extractor().descriptor_dim(); }
  std::string model_name() { return localizer_->extractor().manifest().model_name; }
  std::size_t places() const { return localizer_->map().map().count(); }

 private:
  static vpr::ImageView frame_view(const py::array& frame) {
    if (!frame.dtype().is(py::dtype::of<std::uint8_t>()) || frame.ndim() != 3 ||
        frame.shape(2) != 3 || !(frame.flags() & py::array::c_style)) {
      throw std::invalid_argument(
          "a frame must be a C-contiguous (height, width, 3) uint8 RGB array, got dtype " +
          std::string(py::str(frame.dtype())) + " and " + std::to_string(frame.ndim()) +
          " dimensions");
    }
    if (frame.shape(0) < 1 || frame.shape(1) < 1 || frame.shape(0) > 8192 ||
        frame.shape(1) > 8192) {
      throw std::invalid_argument("a frame must be between 1 x 1 and 8192 x 8192 pixels");
    }
    return {static_cast<const std::uint8_t*>(frame.data()), static_cast<int>(frame.shape(1)),
            static_cast<int>(frame.shape(0)), 0};
  }

  std::unique_ptr<vpr::Localizer> localizer_;
  std::mutex mutex_;
};

}  // namespace

PYBIND11_MODULE(_localizer, m) {
  m.doc() = "vpr-embedded on-device localizer (C++): ExecuTorch bundle + map -> places";
  m.def("set_runtime_verbose", &vpr::set_runtime_verbose, py::arg("verbose"));
  py::class_<PyLocalizer>(m, "Localizer")
      .def(py::init<const std::string&, const std::string&, int, std::size_t, bool, bool>(),
           py::arg("bundle"), py::arg("map"), py::arg("threads") = 1, py::arg("k") = 5,
           py::arg("verify_map_checksum") = true, py::arg("allow_model_mismatch") = false)
      .def("localize", &PyLocalizer::localize, py::arg("frame"))
      .def("embed", &PyLocalizer::embed, py::arg("frame"))
      .def_property_readonly("descriptor_dim", &PyLocalizer::descriptor_dim)
      .def_property_readonly("model_name", &PyLocalizer::model_name)
      .def_property_readonly("places", &PyLocalizer::places);
}

#else

PYBIND11_MODULE(_core, m) {
  m.doc() = "vpr-embedded matching core (C++): exhaustive top-k search with SIMD kernels";

  py::class_<PyIndex>(m, "Index")
      .def(py::init<py::array, const std::string&, std::size_t, std::optional<py::array>>(),
           py::arg("codes"), py::arg("storage"), py::arg("dim") = 0, py::arg("scales") = py::none())
      .def("search", &PyIndex::search, py::arg("queries"), py::arg("k"), py::arg("threads") = 0,
           py::arg("projection") = py::none(), py::arg("projection_mean") = py::none(),
           py::arg("shortlist") = 0, py::arg("rerank") = nullptr)
      .def("search_int8", &PyIndex::search_int8, py::arg("queries"), py::arg("query_scales"),
           py::arg("k"), py::arg("threads") = 0)
      .def_property_readonly("count", &PyIndex::count)
      .def_property_readonly("dim", &PyIndex::dim)
      .def_property_readonly("storage", &PyIndex::storage)
      .def_property_readonly("nbytes", &PyIndex::nbytes);

  m.def("encode", &encode, py::arg("descriptors"), py::arg("storage"));
  m.def("normalise_rows", &normalise_rows, py::arg("descriptors"));
  m.def(
      "simd_level", [] { return vpr::simd_level_name(vpr::active_simd_level()); },
      "SIMD level used by searches now");
  m.def("detected_simd_level", [] { return vpr::simd_level_name(vpr::detect_simd_level()); });
  m.def("available_simd_levels", [] {
    std::vector<std::string> names;
    for (auto level : vpr::supported_simd_levels()) names.push_back(vpr::simd_level_name(level));
    return names;
  });
  m.def(
      "force_simd_level",
      [](std::optional<std::string> name) {
        if (!name) {
          vpr::reset_simd_level();
        } else {
          vpr::force_simd_level(vpr::simd_level_from_name(*name));
        }
      },
      py::arg("level"), "Force a SIMD level by name, or None for the detected one");
  m.def(
      "kernel_tuning",
      [](bool measure) {
        vpr::KernelTuning t;
        {
          py::gil_scoped_release release;  // a measurement streams 64 MB many times
          t = measure ? vpr::calibrate_kernels() : vpr::kernel_tuning();
        }
        if (measure) t.source = "measured now (searches keep the table's choice)";
        py::list picks;
        for (const vpr::KernelPick& p : t.picks) {
          py::list candidates;
          for (const vpr::KernelCandidate& c : p.candidates) {
            candidates.append(py::dict(py::arg("variant") = vpr::kernel_variant_name(c.variant),
                                       py::arg("median_ms") = c.median_ms));
          }
          picks.append(py::dict(py::arg("kernel") = p.kernel, py::arg("min_dim") = p.min_dim,
                                py::arg("max_dim") = p.max_dim >= (std::size_t{1} << 62)
                                                         ? py::object(py::none())
                                                         : py::int_(p.max_dim),
                                py::arg("calibrated_dim") = p.calibrated_dim,
                                py::arg("chosen") = vpr::kernel_variant_name(p.chosen),
                                py::arg("fallback") = vpr::kernel_variant_name(p.fallback),
                                py::arg("why") = p.why, py::arg("candidates") = candidates));
        }
        return py::dict(py::arg("cpu") = t.cpu, py::arg("microarchitecture") = t.microarchitecture,
                        py::arg("source") = t.source, py::arg("margin") = t.margin,
                        py::arg("buffer_bytes") = t.buffer_bytes, py::arg("seconds") = t.seconds,
                        py::arg("picks") = picks, py::arg("report") = vpr::describe(t));
      },
      py::arg("measure") = false,
      "The kernel choice searches use (measure=True: time every candidate now)");
  m.def("resolve_threads", &vpr::resolve_threads, py::arg("threads"));
  register_maps_and_sequences(m);
  // The one manifest validator (csrc/src/manifest.cpp); refusals are ValueError.
  m.def(
      "parse_manifest",
      [](const std::string& text, const std::string& where) {
        return manifest_dict(checked([&] { return vpr::BundleManifest::parse(text, where); }));
      },
      py::arg("text"), py::arg("where"));
  m.def(
      "load_manifest",
      [](const std::string& folder, bool check_pte) {
        vpr::BundleManifest man;
        {
          py::gil_scoped_release release;  // hashing a program takes a while
          man = checked([&] { return vpr::BundleManifest::load(folder, check_pte); });
        }
        return manifest_dict(man);
      },
      py::arg("folder"), py::arg("check_pte") = true);
}

#endif  // VPR_BINDINGS_LOCALIZER
