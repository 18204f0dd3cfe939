// Image files -> RGB8 pixels, the same pixels Python's reader (Pillow) gives.
//
// JPEG goes through libjpeg-turbo, the library Pillow's wheels bundle, with Pillow's
// settings (integer IDCT, fancy upsampling, RGB out), so a JPEG decodes to the same bytes
// in C++ and Python. PNG and PNM are lossless and go through stb_image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vpr/localizer.hpp"

namespace vpr {

// The pixel limit of every image reader (Python: vpr_embedded.data.images): a file that
// claims more is refused from its header, before any pixel memory is allocated.
inline constexpr long long kMaxImagePixels = 8192LL * 8192LL;

struct RgbImage {
  std::vector<std::uint8_t> pixels;  // height rows of width * 3 bytes
  int width = 0;
  int height = 0;
  ImageView view() const { return {pixels.data(), width, height, 0}; }
};

// Decodes a JPEG, PNG or PNM file. Throws std::runtime_error naming the file and the
// reason (missing, unknown format, truncated or corrupt data, over the pixel limit).
RgbImage decode_image(const std::string& path);

// The same for an encoded image already in memory; `what` names it in messages.
RgbImage decode_image_bytes(const std::uint8_t* data, std::size_t size, const std::string& what);

}  // namespace vpr
