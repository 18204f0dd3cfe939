// A frame -> the model's input tensor, exactly as vpr_embedded.data.images.to_tensor:
// Pillow's Image.resize(BILINEAR) (separable triangle filter, antialiased when shrinking,
// 22-bit fixed-point weights, uint8 result after each pass), then (x / 255 - mean) / std
// per channel in the manifest's colour order. In vpr_core (no ExecuTorch, no third-party
// library) so that vpr-localize, the Python localizer and the Android JNI library run
// this one implementation and give the same tensor for the same pixels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vpr/manifest.hpp"

namespace vpr {

// Non-owning RGB8 image: rows of width * 3 bytes, `stride` bytes apart (0: packed).
struct ImageView {
  const std::uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  std::size_t stride = 0;
};

// Pillow-compatible bilinear resize of an RGB8 image to out_w x out_h (RGB8, packed).
std::vector<std::uint8_t> resize_bilinear_pil(const ImageView& image, int out_w, int out_h);

// Resize + colour order + normalisation into a (3, height, width) float32 tensor.
void preprocess(const ImageView& image, const BundleManifest& manifest, float* chw);

}  // namespace vpr
