// JPEG through libjpeg-turbo (Pillow's decoder), PNG/PNM through stb_image.
#include "vpr/image_decode.hpp"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_PNM
#include <stb/stb_image.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>

// jpeglib.h needs size_t and FILE declared first.
#include <jerror.h>
#include <jpeglib.h>

namespace vpr {
namespace {

std::string size_text(long long w, long long h) {
  return std::to_string(w) + " x " + std::to_string(h) + " pixels";
}

void check_pixels(const std::string& what, long long w, long long h) {
  if (w <= 0 || h <= 0) throw std::runtime_error("image " + what + " has no pixels");
  if (w * h > kMaxImagePixels) {
    throw std::runtime_error("image " + what + " claims " + size_text(w, h) +
                             ", over the limit of " + std::to_string(kMaxImagePixels) +
                             " (8192 x 8192)");
  }
}

// libjpeg reports errors through error_exit, which must not return: it longjmps back to
// decode_jpeg (a C++ exception cannot unwind through libjpeg's C frames). The message is
// formatted first, so nothing with a destructor lives between setjmp and longjmp.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void on_jpeg_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings are silent, except premature end of data: libjpeg fills the missing rows with
// grey and goes on, Pillow refuses the file ("image file is truncated"); so do we.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) err->truncated = true;
}

RgbImage decode_jpeg(const std::uint8_t* data, std::size_t size, const std::string& what) {
  RgbImage im;
  jpeg_decompress_struct cinfo;
  JpegError err;
  std::memset(&cinfo, 0, sizeof(cinfo));
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = on_jpeg_error;
  err.mgr.emit_message = on_jpeg_message;
  err.truncated = false;
  err.message[0] = '\0';
  // Everything that may throw a C++ exception (allocation, the pixel limit) is recorded
  // here and thrown after jpeg_destroy_decompress, outside the setjmp region.
  // volatile: they are written after setjmp and read after a longjmp may have happened.
  enum class Failure { None, Jpeg, Limit, Memory, Truncated };
  volatile Failure failure = Failure::None;
  volatile long long claimed_w = 0, claimed_h = 0;
  if (setjmp(err.jump) != 0) {
    failure = Failure::Jpeg;
  } else {
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    claimed_w = cinfo.image_width;
    claimed_h = cinfo.image_height;
    if (claimed_w <= 0 || claimed_h <= 0 || claimed_w * claimed_h > kMaxImagePixels) {
      failure = Failure::Limit;
    } else {
      // Pillow's settings: RGB out, integer (slow, exact) IDCT, fancy upsampling.
      cinfo.out_color_space = JCS_RGB;
      cinfo.dct_method = JDCT_ISLOW;
      cinfo.do_fancy_upsampling = TRUE;
      jpeg_start_decompress(&cinfo);
      const std::size_t row = static_cast<std::size_t>(cinfo.output_width) * 3;
      std::uint8_t* pixels = nullptr;
      try {
        im.pixels.resize(row * cinfo.output_height);
        pixels = im.pixels.data();
      } catch (const std::bad_alloc&) {
        failure = Failure::Memory;
      }
      if (pixels != nullptr) {
        while (cinfo.output_scanline < cinfo.output_height) {
          JSAMPROW rows[1] = {pixels + row * cinfo.output_scanline};
          jpeg_read_scanlines(&cinfo, rows, 1);
        }
        im.width = static_cast<int>(cinfo.output_width);
        im.height = static_cast<int>(cinfo.output_height);
        jpeg_finish_decompress(&cinfo);
        if (err.truncated) failure = Failure::Truncated;
      }
    }
  }
  jpeg_destroy_decompress(&cinfo);
  switch (failure) {
    case Failure::None:
      return im;
    case Failure::Jpeg:
      throw std::runtime_error("cannot decode image " + what + ": " + err.message);
    case Failure::Limit:
      check_pixels(what, claimed_w, claimed_h);
      break;
    case Failure::Memory:
      throw std::runtime_error("cannot decode image " + what + ": out of memory for " +
                               size_text(claimed_w, claimed_h));
    case Failure::Truncated:
      throw std::runtime_error("cannot decode image " + what +
                               ": the file is truncated (premature end of JPEG data)");
  }
  throw std::runtime_error("cannot decode image " + what);
}

RgbImage decode_stb(const std::uint8_t* data, std::size_t size, const std::string& what) {
  if (size > static_cast<std::size_t>(INT32_MAX)) {
    throw std::runtime_error("image " + what + " is over 2 GiB");
  }
  const int n = static_cast<int>(size);
  int w = 0, h = 0, channels = 0;
  if (stbi_info_from_memory(data, n, &w, &h, &channels) == 0) {
    throw std::runtime_error("cannot decode image " + what + ": " + stbi_failure_reason() +
                             " (JPEG, PNG and PNM are read)");
  }
  check_pixels(what, w, h);
  std::unique_ptr<unsigned char, void (*)(void*)> px(
      stbi_load_from_memory(data, n, &w, &h, &channels, 3), stbi_image_free);
  if (!px) {
    throw std::runtime_error("cannot decode image " + what + ": " + stbi_failure_reason());
  }
  RgbImage im;
  im.width = w;
  im.height = h;
  im.pixels.assign(px.get(), px.get() + static_cast<std::size_t>(w) * h * 3);
  return im;
}

}  // namespace

RgbImage decode_image_bytes(const std::uint8_t* data, std::size_t size, const std::string& what) {
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    return decode_jpeg(data, size, what);
  }
  return decode_stb(data, size, what);
}

RgbImage decode_image(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error(
        "cannot open image " + path +
        (std::filesystem::exists(path, ec) ? ": not a regular file" : ": no such file"));
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open image " + path + ": no such readable file");
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                        std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error("cannot read image " + path);
  if (bytes.empty()) throw std::runtime_error("image " + path + " is empty");
  return decode_image_bytes(bytes.data(), bytes.size(), path);
}

}  // namespace vpr
