// vpr-localize: decode images (JPEG/PNG/PPM via Debian's stb_image), run a model
// bundle, match against a .vprmap, print JSON. Without --map it only extracts
// descriptors (for parity checks and benchmarks).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_PNM
#include <stb/stb_image.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vpr/localizer.hpp"

namespace {

struct Image {
  std::unique_ptr<unsigned char, void (*)(void*)> pixels{nullptr, stbi_image_free};
  int width = 0;
  int height = 0;
};

// The pixel limit of every image reader (Python: vpr_embedded.data.images): a file that
// claims more is refused from its header, before any pixel memory is allocated.
constexpr long long kMaxImagePixels = 8192LL * 8192LL;

Image decode(const std::string& path) {
  Image im;
  int channels = 0;
  if (stbi_info(path.c_str(), &im.width, &im.height, &channels) != 0 &&
      static_cast<long long>(im.width) * im.height > kMaxImagePixels) {
    throw std::runtime_error("image " + path + " claims " + std::to_string(im.width) + " x " +
                             std::to_string(im.height) + " pixels, over the limit of " +
                             std::to_string(kMaxImagePixels) + " (8192 x 8192)");
  }
  im.pixels.reset(stbi_load(path.c_str(), &im.width, &im.height, &channels, 3));
  if (!im.pixels) {
    throw std::runtime_error("cannot decode image " + path + ": " + stbi_failure_reason());
  }
  return im;
}

// Peak resident memory of this process image in KiB (Linux VmHWM; reset by exec, unlike
// ru_maxrss, which keeps the forking parent's peak). 0 where unavailable.
long peak_rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string bundle, map_path, desc_out, inputs_out;
  vpr::LocalizerOptions opt;
  int repeat = 1;
  bool no_checksum = false;
  bool verbose = false;
  std::vector<std::string> images;
  // CLI11 parses strictly: "--k -1", "--k 1e3" and "--threads x" are errors, not 2**64-1,
  // 1 and 0 (std::stoul accepted the first two).
  CLI::App app{
      "vpr-localize: run a model bundle on images and match them against a map.\n"
      "Prints JSON: per image the top-k places (with --map) and per-frame times (preprocess,\n"
      "inference, match; decode excluded).",
      "vpr-localize"};
  app.add_option("--bundle", bundle, "model bundle folder (model.pte + manifest.json)")->required();
  app.add_option("--map", map_path, "map file (.vprmap); without it, only descriptors");
  app.add_option("--k", opt.k, "places per image")->check(CLI::Range(1, 1 << 20));
  app.add_option("--threads", opt.threads, "XNNPACK and matching threads")
      ->check(CLI::Range(1, 1024));
  app.add_option("--repeat", repeat, "runs per image; the first is warm-up when > 1")
      ->check(CLI::Range(1, 100000));
  app.add_option("--descriptors-out", desc_out, "write float32 descriptors (N x D)");
  app.add_option("--inputs-out", inputs_out, "write preprocessed inputs (N x 3 x H x W)");
  app.add_flag("--allow-model-mismatch", opt.allow_model_mismatch,
               "accept a map built with another model");
  app.add_flag("--no-map-checksum", no_checksum, "skip the map's CRC and value checks");
  app.add_flag("-v,--verbose", verbose, "also print the ExecuTorch runtime's info lines");
  app.add_option("images", images, "image files (JPEG, PNG, PNM)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "vpr-localize: error: " << e.what() << " (see --help)\n";
    return 2;
  }
  opt.verify_map_checksum = !no_checksum;
  vpr::set_runtime_verbose(verbose);

  try {
    std::unique_ptr<vpr::Localizer> loc;
    std::unique_ptr<vpr::Extractor> ext;
    if (!map_path.empty()) {
      loc = std::make_unique<vpr::Localizer>(bundle, map_path, opt);
    } else {
      ext = std::make_unique<vpr::Extractor>(bundle, opt.threads);
    }
    vpr::Extractor& ex = loc ? loc->extractor() : *ext;
    const vpr::BundleManifest& m = ex.manifest();
    std::ofstream dout, iout;
    if (!desc_out.empty()) dout.open(desc_out, std::ios::binary);
    if (!inputs_out.empty()) iout.open(inputs_out, std::ios::binary);
    std::vector<float> chw(static_cast<std::size_t>(3) * m.height * m.width);
    std::vector<double> pre_ms, inf_ms, match_ms;
    nlohmann::json results = nlohmann::json::array();
    for (const std::string& path : images) {
      const Image im = decode(path);
      const vpr::ImageView view{im.pixels.get(), im.width, im.height, 0};
      std::vector<float> d(ex.descriptor_dim());
      vpr::FrameTiming t;
      for (int r = 0; r < repeat; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        vpr::preprocess(view, m, chw.data());
        auto t1 = std::chrono::steady_clock::now();
        ex.embed_preprocessed(chw.data(), d.data());
        auto t2 = std::chrono::steady_clock::now();
        t.preprocess_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
        t.inference_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
        if (r > 0 || repeat == 1) {
          pre_ms.push_back(t.preprocess_ms);
          inf_ms.push_back(t.inference_ms);
        }
      }
      nlohmann::json item = {{"image", path}};
      if (loc) {
        auto t0 = std::chrono::steady_clock::now();
        const std::vector<vpr::PlaceMatch> top = loc->match(d.data());
        t.match_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        match_ms.push_back(t.match_ms);
        nlohmann::json arr = nlohmann::json::array();
        for (const auto& p : top) {
          nlohmann::json e = {{"id", p.id}, {"score", p.score}};
          if (!p.name.empty()) e["name"] = p.name;
          arr.push_back(e);
        }
        item["top"] = arr;
      }
      item["ms"] = {
          {"preprocess", t.preprocess_ms}, {"inference", t.inference_ms}, {"match", t.match_ms}};
      results.push_back(item);
      if (dout)
        dout.write(reinterpret_cast<const char*>(d.data()),
                   static_cast<std::streamsize>(d.size() * sizeof(float)));
      if (iout)
        iout.write(reinterpret_cast<const char*>(chw.data()),
                   static_cast<std::streamsize>(chw.size() * sizeof(float)));
    }
    nlohmann::json doc = {{"bundle", bundle},
                          {"model", m.model_name},
                          {"quantization", m.quantization},
                          {"descriptor_dim", m.descriptor_dim},
                          {"threads", opt.threads},
                          {"median_ms",
                           {{"preprocess", median(pre_ms)},
                            {"inference", median(inf_ms)},
                            {"match", median(match_ms)}}},
                          {"results", results}};
    if (loc) doc["map"] = map_path;
    doc["peak_rss_kb"] = peak_rss_kb();
    std::cout << doc.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "vpr-localize: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
