#include "vpr/camera.hpp"

#include <fcntl.h>
#include <libyuv/convert_argb.h>
#include <libyuv/convert_from_argb.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "vpr/frames.hpp"
#include "vpr/image_decode.hpp"

namespace vpr {
namespace {

std::string errno_text() { return std::strerror(errno); }

// ioctl, retried when a signal interrupts it.
int xioctl(int fd, unsigned long request, void* arg) {
  int r = 0;
  do {
    r = ::ioctl(fd, request, arg);
  } while (r == -1 && errno == EINTR);
  return r;
}

struct Format {
  const char* name;
  std::uint32_t fourcc;
};
// In the order "auto" tries them: raw formats first (no decoding, no JPEG artefacts).
constexpr Format kFormats[] = {{"yuyv", V4L2_PIX_FMT_YUYV},
                               {"nv12", V4L2_PIX_FMT_NV12},
                               {"yuv420", V4L2_PIX_FMT_YUV420},
                               {"rgb24", V4L2_PIX_FMT_RGB24},
                               {"mjpeg", V4L2_PIX_FMT_MJPEG}};

std::string fourcc_text(std::uint32_t f) {
  std::string s(4, ' ');
  for (int i = 0; i < 4; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<char>((f >> (8 * i)) & 0xFF);
  return s;
}

}  // namespace

V4l2Camera::V4l2Camera(const std::string& device, const CameraOptions& o)
    : device_(device), timeout_ms_(o.timeout_ms) {
  if (o.width <= 0 || o.height <= 0 || o.buffers < 2 || o.timeout_ms <= 0) {
    throw std::invalid_argument("camera: size, buffers (>= 2) and timeout must be positive");
  }
  std::uint32_t wanted = 0;
  if (o.format != "auto") {
    for (const Format& f : kFormats) {
      if (o.format == f.name) wanted = f.fourcc;
    }
    if (wanted == 0) {
      throw std::invalid_argument("unknown camera format '" + o.format +
                                  "': use auto, yuyv, nv12, yuv420, rgb24 or mjpeg");
    }
  }
  fd_ = ::open(device.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error("cannot open camera " + device + ": " + errno_text());
  try {
    v4l2_capability cap{};
    if (xioctl(fd_, VIDIOC_QUERYCAP, &cap) != 0) {
      throw std::runtime_error(device + " is not a V4L2 device (VIDIOC_QUERYCAP: " + errno_text() +
                               ")");
    }
    const std::uint32_t caps =
        (cap.capabilities & V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities;
    if ((caps & V4L2_CAP_VIDEO_CAPTURE) == 0 || (caps & V4L2_CAP_STREAMING) == 0) {
      throw std::runtime_error(device + " (" + reinterpret_cast<const char*>(cap.card) +
                               ") is not a streaming video capture device (a metadata node? "
                               "try the next /dev/videoN)");
    }
    // The formats the device offers; pick the asked one, or the first usable one.
    std::vector<std::uint32_t> offered;
    v4l2_fmtdesc desc{};
    desc.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    for (desc.index = 0; xioctl(fd_, VIDIOC_ENUM_FMT, &desc) == 0; ++desc.index) {
      offered.push_back(desc.pixelformat);
    }
    std::uint32_t pick = 0;
    std::string offered_text;
    for (std::uint32_t f : offered)
      offered_text += (offered_text.empty() ? "" : ", ") + fourcc_text(f);
    for (const Format& f : kFormats) {
      if (pick != 0 || (wanted != 0 && f.fourcc != wanted)) continue;
      for (std::uint32_t g : offered) {
        if (g == f.fourcc) pick = g;
      }
    }
    if (pick == 0) {
      throw std::runtime_error(
          device + " offers " + (offered_text.empty() ? std::string("no formats") : offered_text) +
          ", none of which is " +
          (wanted != 0 ? o.format : std::string("YUYV, NV12, YU12, RGB3 or MJPG")));
    }
    v4l2_format fmt{};
    fmt.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    fmt.fmt.pix.width = static_cast<std::uint32_t>(o.width);
    fmt.fmt.pix.height = static_cast<std::uint32_t>(o.height);
    fmt.fmt.pix.pixelformat = pick;
    fmt.fmt.pix.field = V4L2_FIELD_NONE;
    if (xioctl(fd_, VIDIOC_S_FMT, &fmt) != 0) {
      throw std::runtime_error(device + ": VIDIOC_S_FMT " + fourcc_text(pick) + ": " +
                               errno_text());
    }
    if (fmt.fmt.pix.pixelformat != pick) {
      throw std::runtime_error(device + " would not stream " + fourcc_text(pick) + " (it set " +
                               fourcc_text(fmt.fmt.pix.pixelformat) + ")");
    }
    width_ = static_cast<int>(fmt.fmt.pix.width);
    height_ = static_cast<int>(fmt.fmt.pix.height);
    fourcc_ = pick;
    const std::uint32_t min_stride = pick == V4L2_PIX_FMT_YUYV    ? 2 * fmt.fmt.pix.width
                                     : pick == V4L2_PIX_FMT_RGB24 ? 3 * fmt.fmt.pix.width
                                                                  : fmt.fmt.pix.width;
    stride_ = fmt.fmt.pix.bytesperline >= min_stride ? fmt.fmt.pix.bytesperline : min_stride;
    if (width_ <= 0 || height_ <= 0 || width_ > 16384 || height_ > 16384) {
      throw std::runtime_error(device + " set a frame size of " + std::to_string(width_) + "x" +
                               std::to_string(height_));
    }
    for (const Format& f : kFormats) {
      if (f.fourcc == pick) format_name_ = f.name;
    }

    v4l2_requestbuffers req{};
    req.count = o.buffers;
    req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    req.memory = V4L2_MEMORY_MMAP;
    if (xioctl(fd_, VIDIOC_REQBUFS, &req) != 0 || req.count < 2) {
      throw std::runtime_error(device +
                               ": cannot get mmap buffers (VIDIOC_REQBUFS: " + errno_text() + ")");
    }
    for (std::uint32_t i = 0; i < req.count; ++i) {
      v4l2_buffer b{};
      b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      b.memory = V4L2_MEMORY_MMAP;
      b.index = i;
      if (xioctl(fd_, VIDIOC_QUERYBUF, &b) != 0) {
        throw std::runtime_error(device + ": VIDIOC_QUERYBUF: " + errno_text());
      }
      void* p = ::mmap(nullptr, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, b.m.offset);
      if (p == MAP_FAILED) throw std::runtime_error(device + ": mmap: " + errno_text());
      buffers_.push_back({p, b.length});
      if (xioctl(fd_, VIDIOC_QBUF, &b) != 0) {
        throw std::runtime_error(device + ": VIDIOC_QBUF: " + errno_text());
      }
    }
    v4l2_buf_type type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (xioctl(fd_, VIDIOC_STREAMON, &type) != 0) {
      throw std::runtime_error(device + ": VIDIOC_STREAMON: " + errno_text() +
                               " (is another program using the camera?)");
    }
    streaming_ = true;
  } catch (...) {
    for (const Buffer& b : buffers_) ::munmap(b.data, b.length);
    ::close(fd_);
    throw;
  }
}

V4l2Camera::~V4l2Camera() {
  if (streaming_) {
    v4l2_buf_type type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    xioctl(fd_, VIDIOC_STREAMOFF, &type);
  }
  for (const Buffer& b : buffers_) ::munmap(b.data, b.length);
  if (fd_ >= 0) ::close(fd_);
}

bool V4l2Camera::convert(const Buffer& b, std::size_t used, std::vector<std::uint8_t>& rgb,
                         std::string* error) const {
  const auto* src = static_cast<const std::uint8_t*>(b.data);
  const std::size_t w = static_cast<std::size_t>(width_), h = static_cast<std::size_t>(height_);
  rgb.resize(w * h * 3);
  // The raw formats vpr-localize also reads from a pipe go through frames.cpp, with the
  // driver's row lengths (V4L2 chroma rows: bytesperline for NV12, half of it for YU12).
  PixelFormat format = PixelFormat::Rgb24;
  FrameLayout layout{stride_, stride_};
  std::size_t need = 0;  // MJPEG: any length; the decoder checks it
  if (fourcc_ == V4L2_PIX_FMT_YUYV) {
    need = stride_ * (h - 1) + w * 2;
  } else if (fourcc_ != V4L2_PIX_FMT_MJPEG) {
    if (fourcc_ == V4L2_PIX_FMT_NV12) format = PixelFormat::Nv12;
    if (fourcc_ == V4L2_PIX_FMT_YUV420) {
      format = PixelFormat::Yuv420p;
      layout.chroma_stride = stride_ / 2;
    }
    need = frame_bytes(format, width_, height_, layout);
  }
  if (used > b.length || used < need) {
    *error = "the camera returned " + std::to_string(used) + " bytes, a " + format_name_ +
             " frame of " + std::to_string(w) + "x" + std::to_string(h) + " needs " +
             std::to_string(need);
    return false;
  }
  try {
    if (fourcc_ == V4L2_PIX_FMT_MJPEG) {
      RgbImage im = decode_image_bytes(src, used, "camera frame");
      if (im.width != width_ || im.height != height_) {
        *error = "the camera's JPEG frame is " + std::to_string(im.width) + "x" +
                 std::to_string(im.height) + ", not the " + std::to_string(width_) + "x" +
                 std::to_string(height_) + " it set";
        return false;
      }
      rgb = std::move(im.pixels);
    } else if (fourcc_ == V4L2_PIX_FMT_YUYV) {
      // libyuv has no YUY2 -> RAW: go through ARGB (B, G, R, A in memory).
      const int W = width_, H = height_;
      std::vector<std::uint8_t> argb(w * h * 4);
      if (libyuv::YUY2ToARGB(src, static_cast<int>(stride_), argb.data(), W * 4, W, H) != 0 ||
          libyuv::ARGBToRAW(argb.data(), W * 4, rgb.data(), W * 3, W, H) != 0) {
        throw std::runtime_error("libyuv could not convert the camera frame");
      }
    } else {
      frame_to_rgb(format, src, width_, height_, rgb.data(), layout);
    }
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
  return true;
}

V4l2Camera::Status V4l2Camera::next(std::vector<std::uint8_t>& rgb, std::uint64_t* sequence,
                                    std::uint64_t* dropped, std::string* error) {
  // Dequeue every filled buffer; keep the newest, give the others straight back.
  v4l2_buffer newest{};
  bool have = false;
  while (!have) {  // a wake-up with no buffer filled: wait again
    pollfd p{fd_, POLLIN, 0};
    int r = 0;
    do {
      r = ::poll(&p, 1, timeout_ms_);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
      *error = "no frame from " + device_ + " in " + std::to_string(timeout_ms_) + " ms";
      return Status::Stopped;
    }
    if (r < 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
      *error = device_ + " stopped streaming" + (r < 0 ? ": " + errno_text() : std::string());
      return Status::Stopped;
    }
    for (;;) {
      v4l2_buffer b{};
      b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      b.memory = V4L2_MEMORY_MMAP;
      if (xioctl(fd_, VIDIOC_DQBUF, &b) != 0) {
        if (errno == EAGAIN) break;
        *error = device_ + ": VIDIOC_DQBUF: " + errno_text() + " (unplugged?)";
        if (have) xioctl(fd_, VIDIOC_QBUF, &newest);
        return Status::Stopped;
      }
      if (b.index >= buffers_.size()) {
        *error = device_ + " returned buffer " + std::to_string(b.index) + " of " +
                 std::to_string(buffers_.size());
        return Status::Stopped;
      }
      if (have) xioctl(fd_, VIDIOC_QBUF, &newest);
      newest = b;
      have = true;
    }
  }
  const std::uint64_t seq = newest.sequence;
  *sequence = seq;
  *dropped = started_ && seq > last_sequence_ + 1 ? seq - last_sequence_ - 1 : !started_ ? seq : 0;
  started_ = true;
  last_sequence_ = seq;
  bool ok = true;
  if ((newest.flags & V4L2_BUF_FLAG_ERROR) != 0) {
    *error = "the camera flagged frame " + std::to_string(seq) + " as corrupt";
    ok = false;
  } else {
    ok = convert(buffers_[newest.index], newest.bytesused, rgb, error);
  }
  if (xioctl(fd_, VIDIOC_QBUF, &newest) != 0) {
    *error = device_ + ": VIDIOC_QBUF: " + errno_text();
    return Status::Stopped;
  }
  return ok ? Status::Frame : Status::BadFrame;
}

}  // namespace vpr
