#include "camera_frame.hpp"

#include <libyuv/convert_argb.h>
#include <libyuv/convert_from_argb.h>
#include <libyuv/rotate.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace vpr::jni {
namespace {

// Bytes a plane of `rows` rows of `row_bytes` readable bytes, `stride` apart, spans.
std::uint64_t span(int rows, int stride, std::uint64_t row_bytes) {
  return static_cast<std::uint64_t>(rows - 1) * static_cast<std::uint64_t>(stride) + row_bytes;
}

void check_plane(const char* name, const std::uint8_t* data, std::size_t bytes, int rows,
                 int stride, std::uint64_t row_bytes) {
  if (data == nullptr) throw std::invalid_argument(std::string("the ") + name + " plane is null");
  if (static_cast<std::uint64_t>(stride) < row_bytes) {
    throw std::invalid_argument(std::string("the ") + name + " row stride " +
                                std::to_string(stride) + " is smaller than a row (" +
                                std::to_string(row_bytes) + " bytes)");
  }
  const std::uint64_t need = span(rows, stride, row_bytes);
  if (bytes < need) {
    throw std::invalid_argument(std::string("the ") + name + " plane has " + std::to_string(bytes) +
                                " bytes, a " + std::to_string(rows) +
                                "-row plane with row stride " + std::to_string(stride) + " needs " +
                                std::to_string(need));
  }
}

libyuv::RotationMode rotation_mode(int degrees) {
  switch (degrees) {
    case 0:
      return libyuv::kRotate0;
    case 90:
      return libyuv::kRotate90;
    case 180:
      return libyuv::kRotate180;
    case 270:
      return libyuv::kRotate270;
    default:
      throw std::invalid_argument("rotation must be 0, 90, 180 or 270 degrees, not " +
                                  std::to_string(degrees));
  }
}

}  // namespace

RgbFrame yuv420_to_rgb(const Yuv420Planes& p, int rotation_degrees) {
  const libyuv::RotationMode mode = rotation_mode(rotation_degrees);
  // 16384: far above any camera frame, and keeps every size below in int.
  if (p.width <= 0 || p.height <= 0 || p.width > 16384 || p.height > 16384) {
    throw std::invalid_argument("bad frame size " + std::to_string(p.width) + "x" +
                                std::to_string(p.height));
  }
  if (p.y_row_stride <= 0 || p.uv_row_stride <= 0) {
    throw std::invalid_argument("row strides must be positive");
  }
  if (p.uv_pixel_stride != 1 && p.uv_pixel_stride != 2) {
    throw std::invalid_argument(
        "the chroma pixel stride must be 1 (planar) or 2 (semi-planar), not " +
        std::to_string(p.uv_pixel_stride));
  }
  const int cw = (p.width + 1) / 2;
  const int ch = (p.height + 1) / 2;
  const std::uint64_t chroma_row = static_cast<std::uint64_t>(cw - 1) * p.uv_pixel_stride + 1;
  check_plane("Y", p.y, p.y_bytes, p.height, p.y_row_stride, static_cast<std::uint64_t>(p.width));
  check_plane("U", p.u, p.u_bytes, ch, p.uv_row_stride, chroma_row);
  check_plane("V", p.v, p.v_bytes, ch, p.uv_row_stride, chroma_row);

  const bool turned = rotation_degrees == 90 || rotation_degrees == 270;
  const int w = turned ? p.height : p.width;
  const int h = turned ? p.width : p.height;
  const int dcw = (w + 1) / 2;
  const int dch = (h + 1) / 2;
  // Upright I420 first (libyuv rotates the planes losslessly), then RGB.
  std::vector<std::uint8_t> i420(static_cast<std::size_t>(w) * h +
                                 2 * static_cast<std::size_t>(dcw) * dch);
  std::uint8_t* dy = i420.data();
  std::uint8_t* du = dy + static_cast<std::size_t>(w) * h;
  std::uint8_t* dv = du + static_cast<std::size_t>(dcw) * dch;
  if (libyuv::Android420ToI420Rotate(p.y, p.y_row_stride, p.u, p.uv_row_stride, p.v,
                                     p.uv_row_stride, p.uv_pixel_stride, dy, w, du, dcw, dv, dcw,
                                     p.width, p.height, mode) != 0) {
    throw std::runtime_error("libyuv could not convert the camera frame");
  }
  RgbFrame out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<std::size_t>(w) * h * 3);
  // libyuv names byte orders after little-endian words: its "RAW" is R, G, B in memory.
  if (libyuv::I420ToRAW(dy, w, du, dcw, dv, dcw, out.rgb.data(), w * 3, w, h) != 0) {
    throw std::runtime_error("libyuv could not convert the camera frame to RGB");
  }
  return out;
}

std::vector<std::uint8_t> argb_to_rgb(const std::int32_t* argb, int width, int height) {
  if (argb == nullptr || width <= 0 || height <= 0 || width > 16384 || height > 16384) {
    throw std::invalid_argument("bad ARGB image " + std::to_string(width) + "x" +
                                std::to_string(height));
  }
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(width) * height * 3);
  // An 0xAARRGGBB int is B, G, R, A in little-endian memory: libyuv's "ARGB" (every
  // Android ABI is little-endian).
  if (libyuv::ARGBToRAW(reinterpret_cast<const std::uint8_t*>(argb), width * 4, rgb.data(),
                        width * 3, width, height) != 0) {
    throw std::runtime_error("libyuv could not convert the ARGB pixels to RGB");
  }
  return rgb;
}

}  // namespace vpr::jni
