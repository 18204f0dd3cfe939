// A V4L2 capture device in user space, for testing vpr-localize --camera on machines with
// no camera (and no v4l2loopback): an LD_PRELOAD library that answers the V4L2 ioctls of
// any open file whose name ends in ".fakecam", and passes every other ioctl through.
// Its buffers are that file's pages (the test creates it; REQBUFS sizes it), so the
// camera code's own mmap() and poll() run unchanged. Configured by the environment:
//   FAKE_CAM_SIZE     WxH of every frame
//   FAKE_CAM_FORMATS  the fourccs offered, in order (e.g. "YUYV,MJPG")
//   FAKE_CAM_FRAMES   raw frames, back to back, each FAKE_CAM_STRIDE * rows bytes
//                     (or FAKE_CAM_JPEGS: JPEG files separated by ':', for MJPG)
//   FAKE_CAM_STRIDE   bytes per line of the first plane (default: the packed width)
//   FAKE_CAM_BURST    frames the "camera" has filled each time the reader finds the queue
//                     empty (default 1; 3: the reader is slower than the camera)
//   FAKE_CAM_ERROR_AT a frame number delivered with V4L2_BUF_FLAG_ERROR
//   FAKE_CAM_LOOP     1: start over after the last frame (a camera that never ends);
//                     otherwise the device is "unplugged" (ENODEV) after the last frame
#include <dlfcn.h>
#include <linux/videodev2.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct FakeCamera {
  int width = 0, height = 0;
  std::uint32_t stride = 0, frame_bytes = 0, buffer_bytes = 0;
  std::vector<std::uint32_t> formats;
  std::uint32_t format = 0;
  std::vector<std::string> frames;  // each frame's bytes
  unsigned burst = 1;
  long error_at = -1;
  bool loop = false;
  unsigned buffer_count = 0;
  std::deque<std::uint32_t> queued;
  unsigned available = 0;  // frames filled and not yet dequeued
  std::uint32_t sequence = 0;
  bool streaming = false;
  bool loaded = false;
};

std::mutex g_mutex;
FakeCamera g_cam;

std::string env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

std::uint32_t fourcc(const std::string& s) {
  return s.size() == 4 ? v4l2_fourcc(s[0], s[1], s[2], s[3]) : 0;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void load() {
  if (g_cam.loaded) return;
  g_cam.loaded = true;
  const std::string size = env("FAKE_CAM_SIZE", "64x48");
  g_cam.width = std::atoi(size.c_str());
  g_cam.height = std::atoi(size.c_str() + size.find('x') + 1);
  std::stringstream fs(env("FAKE_CAM_FORMATS", "YUYV"));
  for (std::string f; std::getline(fs, f, ',');) g_cam.formats.push_back(fourcc(f));
  g_cam.burst = static_cast<unsigned>(std::atoi(env("FAKE_CAM_BURST", "1").c_str()));
  if (g_cam.burst == 0) g_cam.burst = 1;
  g_cam.error_at = std::atol(env("FAKE_CAM_ERROR_AT", "-1").c_str());
  g_cam.loop = env("FAKE_CAM_LOOP") == "1";
  const std::string stride = env("FAKE_CAM_STRIDE");
  g_cam.stride = static_cast<std::uint32_t>(std::atoi(stride.c_str()));
}

// Bytes of one frame of `f` at the camera's size and stride.
void set_format(std::uint32_t f) {
  const auto w = static_cast<std::uint32_t>(g_cam.width),
             h = static_cast<std::uint32_t>(g_cam.height);
  const std::uint32_t packed = f == V4L2_PIX_FMT_YUYV ? 2 * w : f == V4L2_PIX_FMT_RGB24 ? 3 * w : w;
  std::uint32_t stride = g_cam.stride != 0 ? g_cam.stride : packed;
  if (f == V4L2_PIX_FMT_MJPEG) stride = 0;
  g_cam.format = f;
  g_cam.frames.clear();
  if (f == V4L2_PIX_FMT_MJPEG) {
    std::stringstream js(env("FAKE_CAM_JPEGS"));
    std::uint32_t largest = 0;
    for (std::string p; std::getline(js, p, ':');) {
      g_cam.frames.push_back(read_file(p));
      largest =
          std::max<std::uint32_t>(largest, static_cast<std::uint32_t>(g_cam.frames.back().size()));
    }
    g_cam.frame_bytes = largest;
  } else {
    g_cam.frame_bytes = f == V4L2_PIX_FMT_NV12 || f == V4L2_PIX_FMT_YUV420
                            ? stride * h + stride * ((h + 1) / 2)
                            : stride * h;
    const std::string all = read_file(env("FAKE_CAM_FRAMES"));
    for (std::size_t at = 0; at + g_cam.frame_bytes <= all.size(); at += g_cam.frame_bytes) {
      g_cam.frames.push_back(all.substr(at, g_cam.frame_bytes));
    }
  }
  g_cam.stride = stride;
  g_cam.buffer_bytes = (g_cam.frame_bytes + 4095) / 4096 * 4096;
}

bool is_fake(int fd) {
  char link[64], target[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n < 8) return false;
  target[n] = '\0';
  return std::strcmp(target + n - 8, ".fakecam") == 0;
}

int fail(int e) {
  errno = e;
  return -1;
}

int fake_ioctl(int fd, unsigned long request, void* arg) {
  std::lock_guard<std::mutex> lock(g_mutex);
  load();
  switch (request) {
    case VIDIOC_QUERYCAP: {
      auto* c = static_cast<v4l2_capability*>(arg);
      std::memset(c, 0, sizeof *c);
      std::strcpy(reinterpret_cast<char*>(c->driver), "fakecam");
      std::strcpy(reinterpret_cast<char*>(c->card), "vpr-embedded test camera");
      c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
      c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
      return 0;
    }
    case VIDIOC_ENUM_FMT: {
      auto* d = static_cast<v4l2_fmtdesc*>(arg);
      if (d->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || d->index >= g_cam.formats.size())
        return fail(EINVAL);
      d->pixelformat = g_cam.formats[d->index];
      return 0;
    }
    case VIDIOC_S_FMT: {
      auto* f = static_cast<v4l2_format*>(arg);
      std::uint32_t pick = g_cam.formats.empty() ? 0 : g_cam.formats[0];
      for (std::uint32_t g : g_cam.formats) {
        if (g == f->fmt.pix.pixelformat) pick = g;
      }
      set_format(pick);
      f->fmt.pix.width = static_cast<std::uint32_t>(g_cam.width);  // its only size
      f->fmt.pix.height = static_cast<std::uint32_t>(g_cam.height);
      f->fmt.pix.pixelformat = pick;
      f->fmt.pix.bytesperline = g_cam.stride;
      f->fmt.pix.sizeimage = g_cam.frame_bytes;
      return 0;
    }
    case VIDIOC_REQBUFS: {
      auto* r = static_cast<v4l2_requestbuffers*>(arg);
      if (r->memory != V4L2_MEMORY_MMAP) return fail(EINVAL);
      r->count = std::min<std::uint32_t>(r->count, 4);
      g_cam.buffer_count = r->count;
      if (::ftruncate(fd, static_cast<off_t>(r->count) * g_cam.buffer_bytes) != 0) return -1;
      return 0;
    }
    case VIDIOC_QUERYBUF: {
      auto* b = static_cast<v4l2_buffer*>(arg);
      if (b->index >= g_cam.buffer_count) return fail(EINVAL);
      b->length = g_cam.buffer_bytes;
      b->m.offset = b->index * g_cam.buffer_bytes;
      return 0;
    }
    case VIDIOC_QBUF: {
      const auto* b = static_cast<const v4l2_buffer*>(arg);
      if (b->index >= g_cam.buffer_count) return fail(EINVAL);
      g_cam.queued.push_back(b->index);
      return 0;
    }
    case VIDIOC_STREAMON:
      g_cam.streaming = true;
      return 0;
    case VIDIOC_STREAMOFF:
      g_cam.streaming = false;
      return 0;
    case VIDIOC_DQBUF: {
      auto* b = static_cast<v4l2_buffer*>(arg);
      if (!g_cam.streaming) return fail(EINVAL);
      if (g_cam.available == 0) {  // the reader found the queue empty: the camera fills more
        g_cam.available = g_cam.burst;
        return fail(EAGAIN);
      }
      if (g_cam.sequence >= g_cam.frames.size() && !g_cam.loop) return fail(ENODEV);  // unplugged
      if (g_cam.queued.empty()) return fail(EAGAIN);
      const std::uint32_t index = g_cam.queued.front();
      g_cam.queued.pop_front();
      const std::string& frame = g_cam.frames[g_cam.sequence % g_cam.frames.size()];
      if (::pwrite(fd, frame.data(), frame.size(),
                   static_cast<off_t>(index) * g_cam.buffer_bytes) !=
          static_cast<ssize_t>(frame.size())) {
        return -1;
      }
      std::memset(b, 0, sizeof *b);
      b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      b->memory = V4L2_MEMORY_MMAP;
      b->index = index;
      b->bytesused = static_cast<std::uint32_t>(frame.size());
      b->length = g_cam.buffer_bytes;
      b->sequence = g_cam.sequence;
      if (static_cast<long>(g_cam.sequence) == g_cam.error_at) b->flags |= V4L2_BUF_FLAG_ERROR;
      ++g_cam.sequence;
      --g_cam.available;
      return 0;
    }
    default:
      return fail(ENOTTY);
  }
}

}  // namespace

extern "C" int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (is_fake(fd)) return fake_ioctl(fd, request, arg);
  using Real = int (*)(int, unsigned long, ...);
  static Real real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "ioctl"));
  return real(fd, request, arg);
}
