#include "vpr/frames.hpp"

#include <libyuv/convert_argb.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace vpr {

PixelFormat parse_pixel_format(const std::string& name) {
  if (name == "rgb24") return PixelFormat::Rgb24;
  if (name == "yuv420p" || name == "i420") return PixelFormat::Yuv420p;
  if (name == "nv12") return PixelFormat::Nv12;
  throw std::invalid_argument("unknown pixel format '" + name +
                              "': use rgb24, yuv420p (i420) or nv12");
}

const char* pixel_format_name(PixelFormat format) {
  switch (format) {
    case PixelFormat::Rgb24:
      return "rgb24";
    case PixelFormat::Yuv420p:
      return "yuv420p";
    case PixelFormat::Nv12:
      return "nv12";
  }
  return "?";
}

namespace {

// The layout with its packed defaults filled in.
FrameLayout resolved(PixelFormat format, int width, FrameLayout l) {
  const std::size_t w = static_cast<std::size_t>(width), cw = (w + 1) / 2;
  if (l.luma_stride == 0) l.luma_stride = format == PixelFormat::Rgb24 ? w * 3 : w;
  if (l.chroma_stride == 0) l.chroma_stride = format == PixelFormat::Nv12 ? 2 * cw : cw;
  return l;
}

}  // namespace

std::size_t frame_bytes(PixelFormat format, int width, int height, FrameLayout layout) {
  if (width <= 0 || height <= 0) throw std::invalid_argument("frame size must be positive");
  const std::size_t w = static_cast<std::size_t>(width), h = static_cast<std::size_t>(height);
  const std::size_t cw = (w + 1) / 2, ch = (h + 1) / 2;
  const FrameLayout l = resolved(format, width, layout);
  switch (format) {
    case PixelFormat::Rgb24:
      return l.luma_stride * (h - 1) + w * 3;
    case PixelFormat::Yuv420p:
      return l.luma_stride * h + 2 * l.chroma_stride * ch;
    case PixelFormat::Nv12:
      return l.luma_stride * h + l.chroma_stride * (ch - 1) + 2 * cw;
  }
  return 0;
}

void frame_to_rgb(PixelFormat format, const std::uint8_t* frame, int width, int height,
                  std::uint8_t* rgb, FrameLayout layout) {
  const std::size_t w = static_cast<std::size_t>(width), h = static_cast<std::size_t>(height);
  const FrameLayout l = resolved(format, width, layout);
  const int ls = static_cast<int>(l.luma_stride), cs = static_cast<int>(l.chroma_stride);
  const std::uint8_t* chroma = frame + l.luma_stride * h;
  // libyuv names byte orders after little-endian words: its "RAW" is R, G, B in memory
  // (what we want), its "RGB24" is B, G, R.
  int rc = 0;
  switch (format) {
    case PixelFormat::Rgb24:
      if (l.luma_stride == w * 3) {
        std::memcpy(rgb, frame, w * h * 3);
      } else {
        for (std::size_t y = 0; y < h; ++y) {
          std::memcpy(rgb + y * w * 3, frame + y * l.luma_stride, w * 3);
        }
      }
      return;
    case PixelFormat::Yuv420p: {
      const std::uint8_t* v = chroma + l.chroma_stride * ((h + 1) / 2);
      rc = libyuv::I420ToRAW(frame, ls, chroma, cs, v, cs, rgb, width * 3, width, height);
      break;
    }
    case PixelFormat::Nv12:
      rc = libyuv::NV12ToRAW(frame, ls, chroma, cs, rgb, width * 3, width, height);
      break;
  }
  if (rc != 0) throw std::runtime_error("libyuv could not convert the frame to RGB");
}

RawFrameReader::RawFrameReader(int fd, std::size_t frame_bytes)
    : fd_(fd), frame_bytes_(frame_bytes) {
  if (frame_bytes == 0) throw std::invalid_argument("frame size must be positive");
}

ReadStatus RawFrameReader::read(std::vector<std::uint8_t>& frame, std::size_t* got,
                                std::string* error) {
  frame.resize(frame_bytes_);
  std::size_t have = 0;
  while (have < frame_bytes_) {
    const ssize_t n = ::read(fd_, frame.data() + have, frame_bytes_ - have);
    if (n > 0) {
      have += static_cast<std::size_t>(n);
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      if (error != nullptr) *error = std::strerror(errno);
      if (got != nullptr) *got = have;
      return ReadStatus::Error;
    }
  }
  if (got != nullptr) *got = have;
  if (have == frame_bytes_) return ReadStatus::Frame;
  return have == 0 ? ReadStatus::End : ReadStatus::Truncated;
}

LatestFrameReader::LatestFrameReader(int fd, std::size_t frame_bytes)
    : reader_(fd, frame_bytes), thread_([this] { run(); }) {}

LatestFrameReader::~LatestFrameReader() {
  // The thread ends at the end of the stream. If the caller stops earlier, a read() may be
  // blocked on a pipe that never closes: the thread is left to the process's exit.
  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ended = ended_;
  }
  if (ended) {
    thread_.join();
  } else {
    thread_.detach();
  }
}

void LatestFrameReader::run() {
  std::vector<std::uint8_t> buffer;
  for (;;) {
    std::size_t got = 0;
    std::string error;
    const ReadStatus st = reader_.read(buffer, &got, &error);
    std::lock_guard<std::mutex> lock(mutex_);
    if (st == ReadStatus::Frame) {
      std::swap(buffer, newest_);  // the reader reuses the older buffer
      newest_index_ = frames_read_++;
      fresh_ = true;
    } else {
      ended_ = true;
      end_status_ = st;
      end_got_ = got;
      end_error_ = error;
    }
    ready_.notify_one();
    if (st != ReadStatus::Frame) return;
  }
}

bool LatestFrameReader::next(std::vector<std::uint8_t>& frame, std::uint64_t* index,
                             std::uint64_t* dropped, ReadStatus* status, std::size_t* got,
                             std::string* error) {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait(lock, [this] { return fresh_ || ended_; });
  if (!fresh_) {
    if (status != nullptr) *status = end_status_;
    if (got != nullptr) *got = end_got_;
    if (error != nullptr) *error = end_error_;
    return false;
  }
  std::swap(frame, newest_);
  fresh_ = false;
  if (index != nullptr) *index = newest_index_;
  if (dropped != nullptr) *dropped = frames_read_ - taken_up_to_ - 1;
  taken_up_to_ = frames_read_;
  return true;
}

}  // namespace vpr
