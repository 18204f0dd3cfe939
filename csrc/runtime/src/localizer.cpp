// Extractor (ExecuTorch Module over the bundle's .pte) and Localizer (+ vpr_core map search).
#include "vpr/localizer.hpp"

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/platform/platform.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

// The wheel ships no threadpool.h; these two declarations match the symbols exported
// by libexecutorch_threadpool.so (executorch/extension/threadpool/threadpool.h).
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(std::uint32_t num_threads);
  std::size_t get_thread_count() const;
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace vpr {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

namespace et = executorch;

std::atomic<bool> runtime_verbose{false};
std::mutex last_error_mutex;
std::string last_error;  // the runtime's latest error line, for our own message

// ExecuTorch's log hook (registered through its platform layer, register_pal): the
// default one prints every level, so each start would print the CPU probe's notices, and
// a refused program would print the runtime's error line before ours. Quiet (the
// default): info and debug are dropped, and an error is kept for the exception message
// that reports it (runtime_error_detail()); verbose: everything is printed as it comes.
void emit_log_message(et_timestamp_t /*timestamp*/, et_pal_log_level_t level, const char* filename,
                      const char* /*function*/, std::size_t line, const char* message,
                      std::size_t length) {
  const bool verbose = runtime_verbose.load();
  if (level == kError && !verbose) {
    std::lock_guard<std::mutex> lock(last_error_mutex);
    last_error.assign(message, length);
    return;
  }
  if ((level == kInfo || level == kDebug) && !verbose) return;
  std::fprintf(stderr, "%c executorch:%s:%zu] %.*s\n", static_cast<char>(level), filename, line,
               static_cast<int>(length), message);
}

// " (the runtime's last error)" or "", and forget it.
std::string runtime_error_detail() {
  std::lock_guard<std::mutex> lock(last_error_mutex);
  std::string detail = last_error.empty() ? "" : ": " + last_error;
  last_error.clear();
  return detail;
}

void install_log_filter() {
  static std::once_flag once;
  std::call_once(once, [] {
    et::runtime::register_pal(et::runtime::PalImpl::create(emit_log_message, __FILE__));
  });
}

}  // namespace

void set_runtime_verbose(bool verbose) {
  runtime_verbose.store(verbose);
  install_log_filter();
}

struct Extractor::Impl {
  std::unique_ptr<et::extension::Module> module;
};

Extractor::Extractor(const std::string& bundle_dir, int threads)
    : manifest_(BundleManifest::load(bundle_dir)), impl_(std::make_unique<Impl>()) {
  install_log_filter();
  if (threads < 0) throw std::invalid_argument("threads must be >= 0");
  if (threads > 0) {
    auto* pool = et::extension::threadpool::get_threadpool();
    if (pool != nullptr) pool->_unsafe_reset_threadpool(static_cast<std::uint32_t>(threads));
  }
  const std::string pte = bundle_dir + "/" + manifest_.pte_file;
  impl_->module =
      std::make_unique<et::extension::Module>(pte, et::extension::Module::LoadMode::Mmap);
  // InternalConsistency: the flatbuffer verifier checks every offset and size of the
  // program before it is used (Module's default, Minimal, checks only the header), so a
  // damaged program whose sha256 was recomputed is refused instead of crashing the runtime.
  const auto loaded = impl_->module->load(et::runtime::Program::Verification::InternalConsistency);
  if (loaded != et::runtime::Error::Ok) {
    throw std::runtime_error(pte + ": not a valid ExecuTorch program (error " +
                             std::to_string(static_cast<int>(loaded)) + runtime_error_detail() +
                             "): the file is damaged; re-export the bundle");
  }
  const auto err = impl_->module->load_method("forward");
  if (err != et::runtime::Error::Ok) {
    throw std::runtime_error(
        pte + ": cannot load method 'forward' (ExecuTorch error " +
        std::to_string(static_cast<int>(err)) + runtime_error_detail() +
        "; a missing operator or backend means a kernel library is not linked)");
  }
  const auto meta = impl_->module->method_meta("forward");
  if (!meta.ok() || meta->num_inputs() != 1 || meta->num_outputs() != 1) {
    throw std::runtime_error(pte + ": the program must take 1 input and give 1 output");
  }
  const auto in = meta->input_tensor_meta(0);
  const auto out = meta->output_tensor_meta(0);
  if (!in.ok() || !out.ok()) throw std::runtime_error(pte + ": input/output are not tensors");
  const auto is = in->sizes();
  const auto os = out->sizes();
  if (is.size() != 4 || is[0] != 1 || is[1] != 3 || is[2] != manifest_.height ||
      is[3] != manifest_.width) {
    throw std::runtime_error(pte + ": the program's input shape does not match the manifest (" +
                             std::to_string(manifest_.height) + "x" +
                             std::to_string(manifest_.width) + "); re-export the bundle");
  }
  if (os.size() != 2 || os[0] != 1 || static_cast<std::size_t>(os[1]) != manifest_.descriptor_dim) {
    throw std::runtime_error(pte + ": the program's output does not match descriptor_dim " +
                             std::to_string(manifest_.descriptor_dim) + "; re-export the bundle");
  }
  input_.resize(static_cast<std::size_t>(3) * manifest_.height * manifest_.width);
}

Extractor::~Extractor() = default;

void Extractor::embed_preprocessed(const float* chw, float* descriptor) {
  auto tensor =
      et::extension::from_blob(const_cast<float*>(chw), {1, 3, manifest_.height, manifest_.width});
  const auto result = impl_->module->forward(tensor);
  if (!result.ok()) {
    throw std::runtime_error("model execution failed (ExecuTorch error " +
                             std::to_string(static_cast<int>(result.error())) +
                             runtime_error_detail() + ")");
  }
  const auto& out = result->at(0).toTensor();
  const float* p = out.const_data_ptr<float>();
  std::copy(p, p + manifest_.descriptor_dim, descriptor);
}

std::vector<float> Extractor::embed(const ImageView& image, FrameTiming* timing) {
  auto t0 = Clock::now();
  preprocess(image, manifest_, input_.data());
  if (timing != nullptr) timing->preprocess_ms = ms_since(t0);
  std::vector<float> d(manifest_.descriptor_dim);
  t0 = Clock::now();
  embed_preprocessed(input_.data(), d.data());
  if (timing != nullptr) timing->inference_ms = ms_since(t0);
  return d;
}

Localizer::Localizer(const std::string& bundle_dir, const std::string& map_path,
                     const LocalizerOptions& options)
    : options_(options), extractor_(bundle_dir, options.threads) {
  MapOpenOptions mo;
  mo.verify_checksum = options.verify_map_checksum;
  map_ = MapFile::open(map_path, mo);
  const MapFileView& m = map_.map();
  if (m.input_dim() != extractor_.descriptor_dim()) {
    throw std::runtime_error(map_path + ": the map takes " + std::to_string(m.input_dim()) +
                             "-d queries, the model gives " +
                             std::to_string(extractor_.descriptor_dim()) +
                             "-d descriptors: build the map with this bundle");
  }
  if (!options.allow_model_mismatch && m.model_sha256_hex() != extractor_.manifest().pte_sha256) {
    throw std::runtime_error(
        map_path + " was built with model " + m.model_sha256_hex().substr(0, 16) + "... (" +
        m.model_name() + "), not this bundle's " + extractor_.manifest().pte_sha256.substr(0, 16) +
        "...: rebuild the map with this bundle (or allow the mismatch)");
  }
  if (options.k == 0) throw std::invalid_argument("k must be >= 1");
  if (options.sequence > 1) {
    SequenceOptions so;
    so.length = options.sequence;
    so.contrast_window = options.sequence_window;
    so.k = options.k;
    so.num_threads = options.threads;
    so.validate();
    sequence_ = std::make_unique<SequenceMatcher>(m.view(), so, m.projection());
  }
}

std::vector<PlaceMatch> Localizer::places(const SearchResults& r) const {
  const MapFileView& m = map_.map();
  std::vector<PlaceMatch> out;
  out.reserve(r.k);
  for (std::size_t i = 0; i < r.k; ++i) {
    if (r.ids[i] < 0) continue;  // fewer places than k
    PlaceMatch p;
    p.id = r.ids[i];
    p.score = r.scores[i];
    const auto id = static_cast<std::size_t>(r.ids[i]);
    if (m.has_names()) p.name = std::string(m.name(id));
    if (m.positions() != nullptr) {
      p.has_position = true;
      p.x = m.positions()[2 * id];
      p.y = m.positions()[2 * id + 1];
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<PlaceMatch> Localizer::match_sequence(const float* descriptor) {
  if (!sequence_) throw std::logic_error("match_sequence needs LocalizerOptions::sequence > 1");
  return places(sequence_->push(descriptor, extractor_.descriptor_dim()));
}

std::vector<PlaceMatch> Localizer::match(const float* descriptor) {
  SearchOptions so;
  so.k = options_.k;
  so.num_threads = options_.threads;
  const MapFileView& m = map_.map();
  return places(m.search(descriptor, 1, extractor_.descriptor_dim(), so));
}

std::vector<PlaceMatch> Localizer::localize(const ImageView& image, FrameTiming* timing) {
  const std::vector<float> d = extractor_.embed(image, timing);
  const auto t0 = Clock::now();
  std::vector<PlaceMatch> out = match(d.data());
  if (timing != nullptr) timing->match_ms = ms_since(t0);
  return out;
}

}  // namespace vpr
