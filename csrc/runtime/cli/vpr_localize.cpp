// vpr-localize: decode images (JPEG/PNG/PPM via Debian's stb_image), run a model
// bundle, match against a .vprmap, print JSON. Without --map it only extracts
// descriptors (for parity checks and benchmarks).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_PNM
#include <stb/stb_image.h>

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

void usage() {
  std::cerr << "usage: vpr-localize --bundle DIR [--map FILE.vprmap] [--k K] [--threads N]\n"
               "                    [--repeat R] [--descriptors-out FILE] [--inputs-out FILE]\n"
               "                    [--allow-model-mismatch] [--no-map-checksum] [--verbose]\n"
               "                    IMAGE...\n"
               "Prints JSON: per image the top-k places (with --map) and per-frame times\n"
               "(preprocess, inference, match; decode excluded). --descriptors-out / --inputs-out\n"
               "write raw float32 descriptors (N x D) / preprocessed inputs (N x 3 x H x W).\n"
               "--verbose also prints the ExecuTorch runtime's info lines.\n";
}

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
  std::vector<std::string> images;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--bundle") {
        bundle = value();
      } else if (a == "--map") {
        map_path = value();
      } else if (a == "--k") {
        opt.k = static_cast<std::size_t>(std::stoul(value()));
      } else if (a == "--threads") {
        opt.threads = std::stoi(value());
      } else if (a == "--repeat") {
        repeat = std::max(1, std::stoi(value()));
      } else if (a == "--descriptors-out") {
        desc_out = value();
      } else if (a == "--inputs-out") {
        inputs_out = value();
      } else if (a == "--allow-model-mismatch") {
        opt.allow_model_mismatch = true;
      } else if (a == "--no-map-checksum") {
        opt.verify_map_checksum = false;
      } else if (a == "--verbose" || a == "-v") {
        vpr::set_runtime_verbose(true);
      } else if (a == "-h" || a == "--help") {
        usage();
        return 0;
      } else if (!a.empty() && a[0] == '-') {
        throw std::invalid_argument("unknown option " + a);
      } else {
        images.push_back(a);
      }
    }
    if (bundle.empty() || images.empty()) {
      usage();
      return 2;
    }
    if (opt.threads < 1) throw std::invalid_argument("--threads must be >= 1");
  } catch (const std::exception& e) {
    std::cerr << "vpr-localize: error: " << e.what() << "\n";
    return 2;
  }

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
