// vpr-localize: run a model bundle on frames and match them against a .vprmap.
//
// Frames come from image files (JPEG through libjpeg-turbo, PNG, PNM) or from raw video on
// standard input (--stdin WxH --pixels rgb24|yuv420p|nv12), as a camera tool or ffmpeg
// writes it. Output is one JSON line per frame, written as soon as the frame is done
// (schemas/localize-frame.schema.json, the same lines as `vpr-embedded localize`). A bad
// frame gives an error line and the stream goes on; the exit status at the end says
// whether any frame failed. Without --map it only extracts descriptors.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "vpr/camera.hpp"
#include "vpr/frames.hpp"
#include "vpr/image_decode.hpp"
#include "vpr/localizer.hpp"
#include "vpr/map_writer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Ctrl-C or SIGTERM: stop after the frame in hand, so that the recorder folds its journal
// and --summary is written (a second signal kills as usual).
std::atomic<bool> g_stop{false};
void on_stop_signal(int sig) {
  g_stop = true;
  ::signal(sig, SIG_DFL);
}
void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;  // blocking reads go on; the loops look at g_stop per frame
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
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

// "640x480" -> (640, 480).
std::pair<int, int> parse_size(const std::string& text, const char* flag = "--stdin") {
  const auto x = text.find('x');
  try {
    std::size_t used_w = 0, used_h = 0;
    if (x == std::string::npos) throw std::invalid_argument("no x");
    const int w = std::stoi(text.substr(0, x), &used_w);
    const int h = std::stoi(text.substr(x + 1), &used_h);
    if (used_w != x || used_h != text.size() - x - 1 || w <= 0 || h <= 0 || w > 16384 ||
        h > 16384) {
      throw std::invalid_argument("range");
    }
    return {w, h};
  } catch (const std::exception&) {
    throw CLI::ValidationError(flag, "expected WIDTHxHEIGHT (each 1..16384), got '" + text + "'");
  }
}

// The ids/scores/names/positions fields of a frame line (or of its "sequence" object).
void places_json(const std::vector<vpr::PlaceMatch>& top, bool names, bool positions,
                 nlohmann::json* out) {
  nlohmann::json ids = nlohmann::json::array(), scores = nlohmann::json::array();
  nlohmann::json nm = nlohmann::json::array(), pos = nlohmann::json::array();
  for (const auto& p : top) {
    ids.push_back(p.id);
    scores.push_back(p.score);
    nm.push_back(p.name);
    pos.push_back({p.x, p.y});
  }
  (*out)["ids"] = ids;
  (*out)["scores"] = scores;
  (*out)["names"] = names ? nm : nlohmann::json(nullptr);
  (*out)["positions"] = positions ? pos : nlohmann::json(nullptr);
}

// Positions of recorded frames, from a CSV with the header of build-map --positions
// (name,lat,lon or name,easting,northing; the name is the place's: a file's name, or
// frame-N for the N-th frame of --stdin). Read lazily, so the file can be a FIFO that a
// GPS or odometry process writes as the robot drives: the lookup of a frame reads lines
// until that frame's line has come. On a stream, lines of frames never localized (--live
// dropped them) are forgotten once a later frame's line is found.
class PositionFeed {
 public:
  PositionFeed(const std::string& path, bool stream) : path_(path), stream_(stream), in_(path) {
    if (!in_) throw std::runtime_error("cannot read the positions file " + path);
    std::string header;
    std::getline(in_, header);
    ++line_;
    const std::vector<std::string> f = fields(header);
    const std::string cols = f.size() == 3 ? lower(f[1]) + "," + lower(f[2]) : "";
    if (cols == "lat,lon" || cols == "latitude,longitude") {
      kind_ = vpr::PositionKind::LatLon;
    } else if (cols == "easting,northing" || cols == "utm_east,utm_north") {
      kind_ = vpr::PositionKind::Utm;
    } else {
      throw std::runtime_error(path +
                               ": expected a header 'name,lat,lon' or "
                               "'name,easting,northing', got '" +
                               header + "'");
    }
  }

  vpr::PositionKind kind() const { return kind_; }

  // The position of the place `name`; throws std::runtime_error if the file has none.
  std::array<double, 2> lookup(const std::string& name) {
    auto it = table_.find(name);
    std::string text;
    while (it == table_.end() && std::getline(in_, text)) {
      ++line_;
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::vector<std::string> f = fields(text);
      std::array<double, 2> xy{};
      bool ok = f.size() == 3;
      try {
        std::size_t used0 = 0, used1 = 0;
        if (ok) xy = {std::stod(f[1], &used0), std::stod(f[2], &used1)};
        ok = ok && used0 == f[1].size() && used1 == f[2].size() && std::isfinite(xy[0]) &&
             std::isfinite(xy[1]);
      } catch (const std::exception&) {  // not a number, or out of double's range
        ok = false;
      }
      if (!ok) {
        throw std::runtime_error(path_ + ":" + std::to_string(line_) +
                                 ": expected name,number,number, got '" + text + "'");
      }
      if (table_.emplace(f[0], xy).second) order_.push_back(f[0]);
      table_[f[0]] = xy;  // a name given twice: the last line wins, as in build-map
      it = table_.find(name);
    }
    if (it == table_.end()) {
      throw std::runtime_error("no position for " + name + " in " + path_ +
                               ": the frame is not recorded");
    }
    const std::array<double, 2> xy = it->second;
    if (stream_) {
      while (!order_.empty()) {
        const std::string front = order_.front();
        order_.pop_front();
        table_.erase(front);
        if (front == name) break;
      }
    }
    return xy;
  }

 private:
  static std::string trim(const std::string& t) {
    const auto a = t.find_first_not_of(" \t\r");
    if (a == std::string::npos) return "";
    return t.substr(a, t.find_last_not_of(" \t\r") - a + 1);
  }
  static std::string lower(std::string t) {
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return t;
  }
  // name,x,y: split at the last two commas, so a name may hold commas.
  static std::vector<std::string> fields(const std::string& text) {
    const auto b = text.rfind(',');
    if (b == std::string::npos || b == 0) return {trim(text)};
    const auto a = text.rfind(',', b - 1);
    if (a == std::string::npos) return {trim(text.substr(0, b)), trim(text.substr(b + 1))};
    return {trim(text.substr(0, a)), trim(text.substr(a + 1, b - a - 1)), trim(text.substr(b + 1))};
  }

  std::string path_;
  bool stream_;
  std::ifstream in_;
  std::size_t line_ = 0;
  vpr::PositionKind kind_ = vpr::PositionKind::None;
  std::unordered_map<std::string, std::array<double, 2>> table_;
  std::deque<std::string> order_;
};

struct Settings {
  std::string bundle, map_path, desc_out, inputs_out, summary_out, stdin_size;
  std::string pixels = "rgb24";
  std::string record_path;
  std::string record_positions;
  std::string record_storage = "int8";
  std::size_t record_every = 100;
  std::string on_bad_image = "fail";
  int stdin_width = 0, stdin_height = 0;  // from stdin_size, parsed once by main
  std::string camera, camera_size = "640x480", camera_format = "auto";
  std::uint64_t max_frames = 0;  // 0: until the source ends (or Ctrl-C)
  vpr::LocalizerOptions opt;
  int repeat = 1;
  bool live = false;
  std::vector<std::string> images;
};

// Runs frames through the model and the map and writes their lines.
class Session {
 public:
  explicit Session(const Settings& s) : s_(s) {
    if (!s.map_path.empty()) {
      loc_ = std::make_unique<vpr::Localizer>(s.bundle, s.map_path, s.opt);
    } else {
      ext_ = std::make_unique<vpr::Extractor>(s.bundle, s.opt.threads);
    }
    ex_ = loc_ ? &loc_->extractor() : ext_.get();
    const vpr::BundleManifest& m = ex_->manifest();
    chw_.resize(static_cast<std::size_t>(3) * m.height * m.width);
    if (!s.record_path.empty()) {
      const std::string& hex = m.pte_sha256;
      std::array<std::uint8_t, 32> sha{};
      for (std::size_t i = 0; i < 32; ++i) {
        sha[i] = static_cast<std::uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
      }
      vpr::MapRecorder::Options ro;
      for (vpr::Storage st : {vpr::Storage::Float32, vpr::Storage::Float16, vpr::Storage::Int8,
                              vpr::Storage::Binary}) {
        if (s.record_storage == vpr::storage_name(st)) ro.storage = st;
      }
      ro.fold_every = s.record_every;
      if (!s.record_positions.empty()) {
        feed_ = std::make_unique<PositionFeed>(s.record_positions, s.images.empty());
        ro.position_kind = feed_->kind();
      }
      rec_ = std::make_unique<vpr::MapRecorder>(s.record_path, sha, m.model_name,
                                                ex_->descriptor_dim(), ro);
    }
    if (!s.desc_out.empty()) open_out(dout_, s.desc_out);
    if (!s.inputs_out.empty()) open_out(iout_, s.inputs_out);
  }

  // One decoded frame -> its line. `decode_ms` is the time spent getting its pixels.
  void frame(std::uint64_t number, const std::string& source, const vpr::ImageView& view,
             double decode_ms, std::optional<std::uint64_t> dropped) {
    const vpr::BundleManifest& m = ex_->manifest();
    std::vector<float> d(ex_->descriptor_dim());
    vpr::FrameTiming t;
    for (int r = 0; r < s_.repeat; ++r) {
      auto t0 = Clock::now();
      vpr::preprocess(view, m, chw_.data());
      t.preprocess_ms = ms_since(t0);
      t0 = Clock::now();
      ex_->embed_preprocessed(chw_.data(), d.data());
      t.inference_ms = ms_since(t0);
      if (r > 0 || s_.repeat == 1) {
        pre_ms_.push_back(t.preprocess_ms);
        inf_ms_.push_back(t.inference_ms);
      }
    }
    if (rec_) {
      // Journaled before the frame's line is written: a line seen is a place recorded.
      // A stream's frames (stdin, camera) are named by number, files by their name.
      const std::string name =
          s_.images.empty() ? "frame-" + std::to_string(number) : fs_name(source);
      const double now =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      if (feed_) {
        const std::array<double, 2> xy = feed_->lookup(name);
        rec_->add(d.data(), now, name, xy.data());
      } else {
        rec_->add(d.data(), now, name);
      }
    }
    nlohmann::json line = {{"frame", number}, {"source", source}};
    if (loc_) {
      const vpr::MapFileView& map = loc_->map().map();
      auto t0 = Clock::now();
      const std::vector<vpr::PlaceMatch> top = loc_->match(d.data());
      t.match_ms = ms_since(t0);
      places_json(top, map.has_names(), map.positions() != nullptr, &line);
      if (s_.opt.sequence > 1) {
        t0 = Clock::now();
        const std::vector<vpr::PlaceMatch> seq = loc_->match_sequence(d.data());
        t.match_ms += ms_since(t0);
        nlohmann::json sj = {{"length", s_.opt.sequence}, {"window", s_.opt.sequence_window}};
        places_json(seq, map.has_names(), map.positions() != nullptr, &sj);
        line["sequence"] = sj;
      }
      match_ms_.push_back(t.match_ms);
    } else {
      line["ids"] = nlohmann::json::array();
      line["scores"] = nlohmann::json::array();
      line["names"] = nullptr;
      line["positions"] = nullptr;
    }
    line["ms"] = {{"decode", decode_ms},
                  {"preprocess", t.preprocess_ms},
                  {"inference", t.inference_ms},
                  {"match", t.match_ms}};
    if (dropped) {
      line["dropped"] = *dropped;
      dropped_ += *dropped;
    }
    write(line);
    ++done_;
    if (dout_)
      dout_.write(reinterpret_cast<const char*>(d.data()),
                  static_cast<std::streamsize>(d.size() * sizeof(float)));
    if (iout_)
      iout_.write(reinterpret_cast<const char*>(chw_.data()),
                  static_cast<std::streamsize>(chw_.size() * sizeof(float)));
  }

  void failed(std::uint64_t number, const std::string& source, const std::string& error) {
    write({{"frame", number}, {"source", source}, {"error", error}});
    ++failed_;
  }

  // Whether the run should end now: --frames reached, or a stop signal came.
  bool enough() const { return g_stop || (s_.max_frames > 0 && done_ + failed_ >= s_.max_frames); }

  // The source failed mid-run (a camera unplugged, stalled): said once at the end.
  void source_failed(const std::string& why) { source_error_ = why; }

  int finish() {
    if (rec_) rec_->close();
    if (!s_.summary_out.empty()) {
      const vpr::BundleManifest& m = ex_->manifest();
      nlohmann::json doc = {{"bundle", s_.bundle},
                            {"model", m.model_name},
                            {"quantization", m.quantization},
                            {"descriptor_dim", m.descriptor_dim},
                            {"threads", s_.opt.threads},
                            {"frames", done_},
                            {"failed", failed_},
                            {"dropped", dropped_},
                            {"median_ms",
                             {{"preprocess", median(pre_ms_)},
                              {"inference", median(inf_ms_)},
                              {"match", median(match_ms_)}}},
                            {"peak_rss_kb", peak_rss_kb()}};
      if (loc_) doc["map"] = s_.map_path;
      std::ofstream f(s_.summary_out);
      f << doc.dump(1) << "\n";
      if (!f) throw std::runtime_error("cannot write " + s_.summary_out);
    }
    if (dout_) dout_.flush();
    if (iout_) iout_.flush();
    if ((dout_.is_open() && !dout_) || (iout_.is_open() && !iout_)) {
      throw std::runtime_error("writing --descriptors-out or --inputs-out failed (disk full?)");
    }
    if (!source_error_.empty()) {
      std::cerr << "vpr-localize: error: " << source_error_ << " (after " << done_ + failed_
                << " frames)\n";
      return 1;
    }
    if (failed_ > 0) {
      std::cerr << "vpr-localize: " << failed_ << " of " << failed_ + done_
                << " frames failed (see their error lines)\n";
      return s_.on_bad_image == "skip" ? 0 : 1;
    }
    return 0;
  }

 private:
  static std::string fs_name(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
  }

  static void open_out(std::ofstream& f, const std::string& path) {
    f.open(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot write " + path);
  }

  static void write(const nlohmann::json& line) {
    // One line per frame, flushed: a reader of the pipe sees each frame when it is done.
    // Invalid UTF-8 in a file name is replaced rather than thrown mid-stream.
    std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n'
              << std::flush;
  }

  const Settings& s_;
  std::unique_ptr<vpr::Localizer> loc_;
  std::unique_ptr<vpr::Extractor> ext_;
  std::unique_ptr<vpr::MapRecorder> rec_;
  std::unique_ptr<PositionFeed> feed_;
  vpr::Extractor* ex_ = nullptr;
  std::vector<float> chw_;
  std::ofstream dout_, iout_;
  std::vector<double> pre_ms_, inf_ms_, match_ms_;
  std::uint64_t done_ = 0, failed_ = 0, dropped_ = 0;
  std::string source_error_;
};

void run_files(Session& session, const std::vector<std::string>& images) {
  std::uint64_t number = 0;
  for (const std::string& path : images) {
    if (session.enough()) return;
    const auto t0 = Clock::now();
    try {
      const vpr::RgbImage im = vpr::decode_image(path);
      session.frame(number, path, im.view(), ms_since(t0), std::nullopt);
    } catch (const std::exception& e) {
      session.failed(number, path, e.what());
    }
    ++number;
  }
}

std::string truncated_message(std::size_t got, std::size_t want) {
  return "the stream ended inside a frame (" + std::to_string(got) + " of " + std::to_string(want) +
         " bytes): check --stdin WxH and --pixels";
}

void run_stdin(Session& session, const Settings& s) {
  const int w = s.stdin_width, h = s.stdin_height;
  const vpr::PixelFormat format = vpr::parse_pixel_format(s.pixels);
  const std::size_t bytes = vpr::frame_bytes(format, w, h);
  std::vector<std::uint8_t> raw, rgb(static_cast<std::size_t>(w) * h * 3);
  const vpr::ImageView view{rgb.data(), w, h, 0};
  auto convert = [&](std::uint64_t number, double wait_ms, std::optional<std::uint64_t> dropped) {
    const auto t0 = Clock::now();
    try {
      vpr::frame_to_rgb(format, raw.data(), w, h, rgb.data());
      session.frame(number, "stdin", view, wait_ms + ms_since(t0), dropped);
    } catch (const std::exception& e) {
      session.failed(number, "stdin", e.what());
    }
  };
  if (!s.live) {
    vpr::RawFrameReader reader(STDIN_FILENO, bytes);
    for (std::uint64_t number = 0; !session.enough(); ++number) {
      std::size_t got = 0;
      std::string error;
      const auto t0 = Clock::now();
      const vpr::ReadStatus st = reader.read(raw, &got, &error);
      if (st == vpr::ReadStatus::End) return;
      if (st == vpr::ReadStatus::Truncated) {
        session.failed(number, "stdin", truncated_message(got, bytes));
        return;
      }
      if (st == vpr::ReadStatus::Error) {
        session.failed(number, "stdin", "reading standard input failed: " + error);
        return;
      }
      convert(number, ms_since(t0), std::nullopt);
    }
  }
  vpr::LatestFrameReader reader(STDIN_FILENO, bytes);
  std::uint64_t index = 0, dropped = 0, next_number = 0;
  vpr::ReadStatus st = vpr::ReadStatus::End;
  std::size_t got = 0;
  std::string error;
  while (!session.enough()) {
    const auto t0 = Clock::now();
    if (!reader.next(raw, &index, &dropped, &st, &got, &error)) break;
    convert(index, ms_since(t0), dropped);
    next_number = index + 1;
  }
  if (st == vpr::ReadStatus::Truncated) {
    session.failed(next_number, "stdin", truncated_message(got, bytes));
  } else if (st == vpr::ReadStatus::Error) {
    session.failed(next_number, "stdin", "reading standard input failed: " + error);
  }
}

// A V4L2 camera: live, the newest frame each time (frames are numbered by the driver).
void run_camera(Session& session, const Settings& s) {
  vpr::CameraOptions o;
  std::tie(o.width, o.height) = parse_size(s.camera_size, "--camera-size");
  o.format = s.camera_format;
  vpr::V4l2Camera camera(s.camera, o);  // a device that cannot stream: one line, exit 1
  std::cerr << "vpr-localize: " << s.camera << ": " << camera.width() << "x" << camera.height()
            << " " << camera.format() << "\n";
  std::vector<std::uint8_t> rgb;
  const std::string source = s.camera;
  while (!session.enough()) {
    std::uint64_t sequence = 0, dropped = 0;
    std::string error;
    const auto t0 = Clock::now();
    const vpr::V4l2Camera::Status st = camera.next(rgb, &sequence, &dropped, &error);
    if (st == vpr::V4l2Camera::Status::Stopped) {
      if (!g_stop) session.source_failed(error);
      return;
    }
    if (st == vpr::V4l2Camera::Status::BadFrame) {
      session.failed(sequence, source, error);
      continue;
    }
    try {
      session.frame(sequence, source,
                    vpr::ImageView{rgb.data(), camera.width(), camera.height(), 0}, ms_since(t0),
                    dropped);
    } catch (const std::exception& e) {
      session.failed(sequence, source, e.what());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  bool no_checksum = false;
  bool verbose = false;
  // CLI11 parses strictly: "--k -1", "--k 1e3" and "--threads x" are errors, not 2**64-1,
  // 1 and 0 (std::stoul accepted the first two).
  CLI::App app{
      "vpr-localize: run a model bundle on frames and match them against a map.\n"
      "Frames: image files (JPEG, PNG, PNM) or raw video on standard input (--stdin WxH).\n"
      "Prints one JSON line per frame as it is done (schemas/localize-frame.schema.json):\n"
      "the top-k places (with --map), and per-frame times. A bad frame prints an error line\n"
      "and the rest goes on; the exit status is 1 if any frame failed. --record MAP maps a\n"
      "route on the device: every frame becomes a place.",
      "vpr-localize"};
  app.add_option("--bundle", s.bundle, "model bundle folder (model.pte + manifest.json)")
      ->required();
  app.add_option("--map", s.map_path, "map file (.vprmap); without it, only descriptors");
  app.add_option("--k", s.opt.k, "places per frame")->check(CLI::Range(1, 1 << 20));
  app.add_option("--sequence", s.opt.sequence,
                 "also match over the last L frames (a \"sequence\" field per line; needs --map)")
      ->check(CLI::Range(2, 100000));
  app.add_option("--sequence-window", s.opt.sequence_window,
                 "places the sequence scores are contrast-normalised over (default 20, chosen "
                 "on a validation segment; SeqSLAM's is 10)")
      ->check(CLI::Range(2, 1000000));
  app.add_option("--threads", s.opt.threads, "XNNPACK and matching threads")
      ->check(CLI::Range(1, 1024));
  app.add_option("--repeat", s.repeat, "runs per frame; the first is warm-up when > 1")
      ->check(CLI::Range(1, 100000));
  app.add_option("--stdin", s.stdin_size,
                 "read raw frames of WIDTHxHEIGHT from standard input (e.g. rpicam-vid -o -, "
                 "ffmpeg -f rawvideo -)");
  app.add_option("--pixels", s.pixels, "pixel format of --stdin frames")
      ->check(CLI::IsMember({"rgb24", "yuv420p", "i420", "nv12"}));
  app.add_flag("--live", s.live,
               "--stdin is a live camera: take the newest frame each time and count the ones "
               "dropped (default: every frame, the writer waits)");
  app.add_option("--camera", s.camera,
                 "read a V4L2 camera (/dev/videoN): live, the newest frame each time, the "
                 "dropped ones counted");
  app.add_option("--camera-size", s.camera_size, "frame size asked of the camera (WIDTHxHEIGHT)");
  app.add_option("--camera-format", s.camera_format, "pixel format asked of the camera")
      ->check(CLI::IsMember({"auto", "yuyv", "nv12", "yuv420", "rgb24", "mjpeg"}));
  app.add_option("--frames", s.max_frames, "stop after this many frames (default: all)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 62));
  app.add_option("--on-bad-image", s.on_bad_image,
                 "a frame that cannot be read or run gets an error line either way; fail: exit "
                 "1 at the end, skip: exit 0")
      ->check(CLI::IsMember({"fail", "skip"}));
  app.add_option("--record", s.record_path,
                 "append every good frame (descriptor, name, time) to this map, created if "
                 "missing: journaled per frame, folded into the map atomically");
  app.add_option("--record-positions", s.record_positions,
                 "positions of the recorded frames: a CSV 'name,lat,lon' or "
                 "'name,easting,northing' (name: the file's name, or frame-N on --stdin), "
                 "read as frames come, so it may be a FIFO a GPS writes");
  app.add_option("--record-every", s.record_every, "frames between folds of the journal")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--record-storage", s.record_storage, "storage of a new recorded map")
      ->check(CLI::IsMember({"float32", "float16", "int8", "binary"}));
  app.add_option("--descriptors-out", s.desc_out,
                 "write float32 descriptors (one row per good frame)");
  app.add_option("--inputs-out", s.inputs_out, "write preprocessed inputs (N x 3 x H x W)");
  app.add_option("--summary", s.summary_out,
                 "write a JSON summary (median times, peak memory, counts) to this file");
  app.add_flag("--allow-model-mismatch", s.opt.allow_model_mismatch,
               "accept a map built with another model");
  app.add_flag("--no-map-checksum", no_checksum, "skip the map's CRC and value checks");
  app.add_flag("-v,--verbose", verbose, "also print the ExecuTorch runtime's info lines");
  app.add_option("images", s.images, "image files (JPEG, PNG, PNM)");
  try {
    app.parse(argc, argv);
    const int sources =
        int(!s.images.empty()) + int(!s.stdin_size.empty()) + int(!s.camera.empty());
    if (sources != 1) {
      throw CLI::ValidationError("frames",
                                 "give one source: image files, --stdin WxH or --camera DEVICE");
    }
    if (!s.camera.empty()) parse_size(s.camera_size, "--camera-size");  // bad: exit 2 here
    if (!s.stdin_size.empty()) std::tie(s.stdin_width, s.stdin_height) = parse_size(s.stdin_size);
    if (s.live && s.stdin_size.empty()) {
      throw CLI::ValidationError("--live", "needs --stdin WxH");
    }
    if (!s.record_positions.empty() && s.record_path.empty()) {
      throw CLI::ValidationError("--record-positions", "needs --record MAP");
    }
    if (s.opt.sequence > 1 && s.map_path.empty()) {
      throw CLI::ValidationError("--sequence", "needs --map");
    }
    if (app.count("--sequence-window") > 0 && s.opt.sequence < 2) {
      throw CLI::ValidationError("--sequence-window", "needs --sequence L");
    }
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "vpr-localize: error: " << e.what() << " (see --help)\n";
    return 2;
  }
  s.opt.verify_map_checksum = !no_checksum;
  vpr::set_runtime_verbose(verbose);

  try {
    Session session(s);  // a bundle or map that cannot be used: one line, exit 1
    install_stop_handlers();
    if (!s.camera.empty()) {
      run_camera(session, s);
    } else if (s.stdin_size.empty()) {
      run_files(session, s.images);
    } else {
      run_stdin(session, s);
    }
    return session.finish();
  } catch (const std::exception& e) {
    std::cerr << "vpr-localize: error: " << e.what() << "\n";
    return 1;
  }
}
