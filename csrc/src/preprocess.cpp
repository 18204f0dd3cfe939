// Pillow-compatible bilinear resize (Pillow's libImaging/Resample.c algorithm:
// precompute_coeffs, normalize_coeffs_8bpc, horizontal then vertical pass) and
// normalisation to the model's input tensor.
#include "vpr/preprocess.hpp"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace vpr {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;      // per output pixel: xmin, count
  std::vector<std::int32_t> k;  // per output pixel: ksize fixed-point weights
};

Coeffs precompute(int in_size, int out_size) {
  const double in0 = 0.0;
  const double in1 = static_cast<double>(static_cast<float>(in_size));
  double scale = (in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<std::size_t>(out_size) * 2);
  c.k.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
  std::vector<double> kk(static_cast<std::size_t>(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = triangle((x + xmin - center + 0.5) * ss);
      kk[static_cast<std::size_t>(x)] = w;
      ww += w;
    }
    for (int x = 0; x < c.ksize; ++x) {
      double v = 0.0;
      if (x < xmax)
        v = ww != 0.0 ? kk[static_cast<std::size_t>(x)] / ww : kk[static_cast<std::size_t>(x)];
      const double scaled = v * (1 << kPrecisionBits);
      c.k[static_cast<std::size_t>(xx) * c.ksize + x] =
          static_cast<std::int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.bounds[static_cast<std::size_t>(xx) * 2] = xmin;
    c.bounds[static_cast<std::size_t>(xx) * 2 + 1] = xmax;
  }
  return c;
}

inline std::uint8_t clip8(std::int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<std::uint8_t>(v >> kPrecisionBits);
}

}  // namespace

std::vector<std::uint8_t> resize_bilinear_pil(const ImageView& image, int out_w, int out_h) {
  if (image.data == nullptr || image.width <= 0 || image.height <= 0) {
    throw std::invalid_argument("resize: empty image");
  }
  if (out_w <= 0 || out_h <= 0) throw std::invalid_argument("resize: bad output size");
  const std::size_t in_stride =
      image.stride ? image.stride : static_cast<std::size_t>(image.width) * 3;
  if (in_stride < static_cast<std::size_t>(image.width) * 3) {
    throw std::invalid_argument("resize: stride smaller than width * 3");
  }
  const bool need_h = out_w != image.width;
  const bool need_v = out_h != image.height;
  const Coeffs ch = precompute(image.width, out_w);
  Coeffs cv = precompute(image.height, out_h);

  // Horizontal pass over the rows the vertical pass uses.
  const std::uint8_t* src = image.data;
  std::size_t src_stride = in_stride;
  int src_w = image.width;
  int src_h = image.height;
  std::vector<std::uint8_t> tmp;
  if (need_h) {
    const int first = cv.bounds[0];
    const int last = cv.bounds[static_cast<std::size_t>(out_h) * 2 - 2] +
                     cv.bounds[static_cast<std::size_t>(out_h) * 2 - 1];
    for (int i = 0; i < out_h; ++i) cv.bounds[static_cast<std::size_t>(i) * 2] -= first;
    const int rows = last - first;
    tmp.resize(static_cast<std::size_t>(rows) * out_w * 3);
    for (int yy = 0; yy < rows; ++yy) {
      const std::uint8_t* row = image.data + static_cast<std::size_t>(yy + first) * in_stride;
      std::uint8_t* out = tmp.data() + static_cast<std::size_t>(yy) * out_w * 3;
      for (int xx = 0; xx < out_w; ++xx) {
        const int xmin = ch.bounds[static_cast<std::size_t>(xx) * 2];
        const int xmax = ch.bounds[static_cast<std::size_t>(xx) * 2 + 1];
        const std::int32_t* k = &ch.k[static_cast<std::size_t>(xx) * ch.ksize];
        std::int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < xmax; ++x) {
          const std::uint8_t* p = row + static_cast<std::size_t>(x + xmin) * 3;
          s0 += p[0] * k[x];
          s1 += p[1] * k[x];
          s2 += p[2] * k[x];
        }
        out[xx * 3 + 0] = clip8(s0);
        out[xx * 3 + 1] = clip8(s1);
        out[xx * 3 + 2] = clip8(s2);
      }
    }
    src = tmp.data();
    src_stride = static_cast<std::size_t>(out_w) * 3;
    src_w = out_w;
    src_h = rows;
  }
  std::vector<std::uint8_t> dst(static_cast<std::size_t>(out_h) * src_w * 3);
  if (!need_v) {
    for (int y = 0; y < out_h; ++y) {
      const std::uint8_t* row = src + static_cast<std::size_t>(y) * src_stride;
      std::copy(row, row + static_cast<std::size_t>(src_w) * 3,
                dst.begin() + static_cast<std::ptrdiff_t>(y) * src_w * 3);
    }
    return dst;
  }
  (void)src_h;
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = cv.bounds[static_cast<std::size_t>(yy) * 2];
    const int ymax = cv.bounds[static_cast<std::size_t>(yy) * 2 + 1];
    const std::int32_t* k = &cv.k[static_cast<std::size_t>(yy) * cv.ksize];
    std::uint8_t* out = dst.data() + static_cast<std::size_t>(yy) * src_w * 3;
    for (int xx = 0; xx < src_w * 3; ++xx) {
      std::int32_t s = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y)
        s += src[static_cast<std::size_t>(y + ymin) * src_stride + xx] * k[y];
      out[xx] = clip8(s);
    }
  }
  return dst;
}

void preprocess(const ImageView& image, const BundleManifest& m, float* chw) {
  const std::vector<std::uint8_t> rgb = resize_bilinear_pil(image, m.width, m.height);
  const std::size_t plane = static_cast<std::size_t>(m.width) * m.height;
  // Same arithmetic as numpy: float32 (v / 255), minus mean, divided by std.
  for (int c = 0; c < 3; ++c) {
    const int src_c = m.bgr ? 2 - c : c;
    const float mean = m.mean[static_cast<std::size_t>(c)];
    const float sd = m.std[static_cast<std::size_t>(c)];
    float* out = chw + plane * static_cast<std::size_t>(c);
    for (std::size_t i = 0; i < plane; ++i) {
      const float v = static_cast<float>(rgb[i * 3 + static_cast<std::size_t>(src_c)]) / 255.0F;
      // Rotating by 180 degrees reverses the row-major pixel order.
      out[m.rotate_180 ? plane - 1 - i : i] = (v - mean) / sd;
    }
  }
}

}  // namespace vpr
