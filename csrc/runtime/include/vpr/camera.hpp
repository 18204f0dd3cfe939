// A V4L2 capture device (Linux /dev/videoN: USB webcams, the Pi's libcamera V4L2 bridge,
// capture cards), streamed through mmap'ed driver buffers.
//
// A camera does not wait for a slow consumer, so this reader is live by nature: next()
// takes the newest frame the driver has filled, gives the older filled buffers straight
// back, and reports how many frames were never returned, from the driver's own frame
// sequence numbers (so frames the driver dropped count too).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vpr {

struct CameraOptions {
  int width = 640;  // asked of the driver; it may pick the nearest size it has
  int height = 480;
  // "auto" (the first of yuyv, nv12, yuv420, rgb24, mjpeg the device offers) or one of them.
  std::string format = "auto";
  int timeout_ms = 5000;  // no frame for this long: an error (a camera that stalled)
  unsigned buffers = 4;
};

class V4l2Camera {
 public:
  // Opens and starts the device. Throws std::runtime_error saying what is wrong (no such
  // device, not a V4L2 capture device, no supported format, ...).
  V4l2Camera(const std::string& device, const CameraOptions& options);
  ~V4l2Camera();
  V4l2Camera(const V4l2Camera&) = delete;
  V4l2Camera& operator=(const V4l2Camera&) = delete;

  int width() const { return width_; }  // what the driver set
  int height() const { return height_; }
  const std::string& format() const { return format_name_; }

  enum class Status {
    Frame,     // rgb holds the newest frame (width * height * 3 bytes)
    BadFrame,  // the newest frame is unusable (driver error flag, short, corrupt JPEG)
    Stopped,   // the device went away or failed; `error` says why
  };
  // Waits up to timeout_ms for a frame. `sequence` is the frame's number in the stream,
  // `dropped` the frames since the last call that were never returned.
  Status next(std::vector<std::uint8_t>& rgb, std::uint64_t* sequence, std::uint64_t* dropped,
              std::string* error);

 private:
  struct Buffer {
    void* data = nullptr;
    std::size_t length = 0;
  };
  bool convert(const Buffer& b, std::size_t used, std::vector<std::uint8_t>& rgb,
               std::string* error) const;
  std::string device_;
  int fd_ = -1;
  int width_ = 0, height_ = 0;
  std::uint32_t fourcc_ = 0;
  std::uint32_t stride_ = 0;  // bytes per line of the first plane
  std::string format_name_;
  int timeout_ms_ = 5000;
  std::vector<Buffer> buffers_;
  bool streaming_ = false;
  bool started_ = false;
  std::uint64_t last_sequence_ = 0;
};

}  // namespace vpr
