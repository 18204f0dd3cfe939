// Raw video frames from a pipe or a file: what `rpicam-vid -o -`, `ffmpeg ... -f rawvideo -`
// and GStreamer's fdsink write, frame after frame with no header.
//
// Two ways to read them:
// - RawFrameReader: every frame, in order. A pipe is read frame by frame, so a writer
//   faster than the localizer waits (back-pressure); nothing is dropped.
// - LatestFrameReader: a live camera. A thread drains the pipe as fast as the camera
//   writes, keeping only the newest frame; the localizer takes the newest one each time
//   and is told how many it never saw (a camera does not wait for a slow consumer).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vpr {

enum class PixelFormat { Rgb24, Yuv420p, Nv12 };

// "rgb24", "yuv420p" (I420: Y plane, then U and V at half resolution) or "nv12" (Y plane,
// then interleaved UV at half resolution). Throws std::invalid_argument naming the choices.
PixelFormat parse_pixel_format(const std::string& name);
const char* pixel_format_name(PixelFormat format);

// Where a frame's planes lie: bytes per row of the first plane (the RGB rows of rgb24)
// and of the chroma plane(s), the chroma plane(s) right after the first plane's `height`
// rows. 0: packed, as a pipe carries frames (width * 3, or width; chroma (width + 1) / 2
// for yuv420p, 2 * ((width + 1) / 2) for nv12: odd sizes round up, as ffmpeg does). A V4L2
// driver's rows may be longer (its bytesperline).
struct FrameLayout {
  std::size_t luma_stride = 0;
  std::size_t chroma_stride = 0;
};

// Bytes one width x height frame in that layout must hold.
std::size_t frame_bytes(PixelFormat format, int width, int height, FrameLayout layout = {});

// One frame -> packed RGB8 (width * height * 3 bytes). YUV is BT.601 limited range
// (ffmpeg's and the Pi camera stack's default), converted with libyuv.
void frame_to_rgb(PixelFormat format, const std::uint8_t* frame, int width, int height,
                  std::uint8_t* rgb, FrameLayout layout = {});

enum class ReadStatus {
  Frame,      // a whole frame was read
  End,        // the stream ended at a frame boundary
  Truncated,  // the stream ended inside a frame (its bytes are reported, not used)
  Error,      // read() failed (errno in the message)
};

class RawFrameReader {
 public:
  RawFrameReader(int fd, std::size_t frame_bytes);
  // Blocks until a whole frame is in `frame` (resized to frame_bytes), the stream ends, or
  // read() fails. `got` is the byte count of a truncated frame; `error` says why on Error.
  ReadStatus read(std::vector<std::uint8_t>& frame, std::size_t* got = nullptr,
                  std::string* error = nullptr);

 private:
  int fd_;
  std::size_t frame_bytes_;
};

class LatestFrameReader {
 public:
  LatestFrameReader(int fd, std::size_t frame_bytes);
  ~LatestFrameReader();
  LatestFrameReader(const LatestFrameReader&) = delete;
  LatestFrameReader& operator=(const LatestFrameReader&) = delete;

  // Waits for a frame newer than the last one taken and swaps it into `frame`. `index` is
  // its number in the stream (0-based, counting dropped frames), `dropped` the frames
  // that arrived since the last one taken and were never returned. Returns false once the
  // stream has ended and every frame is taken; `status`, `got` and `error` then say how
  // it ended (End, Truncated with its byte count, Error).
  bool next(std::vector<std::uint8_t>& frame, std::uint64_t* index, std::uint64_t* dropped,
            ReadStatus* status = nullptr, std::size_t* got = nullptr, std::string* error = nullptr);

 private:
  void run();
  RawFrameReader reader_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<std::uint8_t> newest_;
  std::uint64_t newest_index_ = 0;
  std::uint64_t frames_read_ = 0;  // whole frames read from the stream
  std::uint64_t taken_up_to_ = 0;  // frames_read_ when the last frame was taken
  bool fresh_ = false;             // newest_ not taken yet
  bool ended_ = false;
  ReadStatus end_status_ = ReadStatus::End;
  std::size_t end_got_ = 0;
  std::string end_error_;
  std::thread thread_;
};

}  // namespace vpr
