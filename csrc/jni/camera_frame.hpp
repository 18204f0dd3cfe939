// Android camera frames (YUV_420_888, as android.media.Image and CameraX's ImageProxy give
// them) -> upright packed RGB8, with libyuv: the conversion the Android app runs before
// vpr::preprocess, in C++ so that the app's model input is the one Python and
// vpr-localize compute for the same pixels (BT.601 limited range, as vpr-localize's
// --pixels yuv420p/nv12).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vpr::jni {

// The three planes of a YUV_420_888 frame. Chroma is subsampled 2x2 ((w + 1) / 2 by
// (h + 1) / 2 samples); uv_pixel_stride is 1 for planar (I420) and 2 for semi-planar
// (NV12/NV21: u and v then point into one interleaved buffer). *_bytes are the bytes each
// pointer may read (a plane's last row may stop short of its row stride).
struct Yuv420Planes {
  const std::uint8_t* y = nullptr;
  std::size_t y_bytes = 0;
  int y_row_stride = 0;
  const std::uint8_t* u = nullptr;
  std::size_t u_bytes = 0;
  const std::uint8_t* v = nullptr;
  std::size_t v_bytes = 0;
  int uv_row_stride = 0;
  int uv_pixel_stride = 0;
  int width = 0;
  int height = 0;
};

struct RgbFrame {
  std::vector<std::uint8_t> rgb;  // packed R, G, B rows
  int width = 0;
  int height = 0;
};

// Checks every size and stride (std::invalid_argument naming the bad one), turns the frame
// clockwise by rotation_degrees (0, 90, 180 or 270: what ImageInfo.getRotationDegrees()
// says makes it upright) and converts it to RGB8.
RgbFrame yuv420_to_rgb(const Yuv420Planes& planes, int rotation_degrees);

// Android ARGB_8888 pixels (Bitmap.getPixels: one 0xAARRGGBB int per pixel, row after row)
// -> packed RGB8; alpha is dropped.
std::vector<std::uint8_t> argb_to_rgb(const std::int32_t* argb, int width, int height);

}  // namespace vpr::jni
