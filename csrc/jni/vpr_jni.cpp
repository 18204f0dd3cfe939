// JNI bridge of the matching core for the Android demo (and host tests):
// org.vprembedded.VprMap and org.vprembedded.VprSequenceMatcher.
//
// This library links vpr_core only. It must not call ExecuTorch's C++: the
// ExecuTorch AAR exports only JNI symbols (DESIGN.md, "Known traps").
//
// Every entry point catches every C++ exception and turns it into a pending
// Java exception (IllegalArgumentException, IOException, OutOfMemoryError or
// RuntimeException), so a bad file or argument never takes the JVM down.
// Handles are heap objects owned by the Java side; the Java wrappers check
// for use after close() and serialise calls on one handle.
#include <jni.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "camera_frame.hpp"
#include "vpr/manifest.hpp"
#include "vpr/map_file.hpp"
#include "vpr/matcher.hpp"
#include "vpr/preprocess.hpp"
#include "vpr/sequence.hpp"

namespace {

constexpr const char* kIllegalArgument = "java/lang/IllegalArgumentException";
constexpr const char* kIllegalState = "java/lang/IllegalStateException";
constexpr const char* kIoException = "java/io/IOException";
constexpr const char* kOutOfMemory = "java/lang/OutOfMemoryError";
constexpr const char* kRuntime = "java/lang/RuntimeException";

// A memory-mapped map shared by a VprMap and the sequence matchers made from
// it, so closing the map never leaves a matcher reading unmapped memory.
struct MapHandle {
  std::shared_ptr<const vpr::MapFile> file;
};

struct SequenceHandle {
  SequenceHandle(std::shared_ptr<const vpr::MapFile> f, const vpr::SequenceOptions& options)
      : file(std::move(f)), matcher(file->view(), options, file->map().projection()) {}
  std::shared_ptr<const vpr::MapFile> file;
  vpr::SequenceMatcher matcher;
};

// Thrown by the helpers below when a Java exception is already pending.
struct JavaExceptionPending {};

void throw_java(JNIEnv* env, const char* cls, const std::string& message) {
  if (env->ExceptionCheck()) return;  // keep the first exception
  jclass c = env->FindClass(cls);
  if (c == nullptr) return;  // FindClass left NoClassDefFoundError pending
  env->ThrowNew(c, message.c_str());
  env->DeleteLocalRef(c);
}

// Runs body(); maps C++ exceptions to Java ones (`runtime_error_class` for
// std::runtime_error, e.g. IOException when opening a file) and returns
// `fallback` when anything was thrown.
template <typename T, typename Body>
T guarded(JNIEnv* env, T fallback, const char* runtime_error_class, Body&& body) {
  try {
    return body();
  } catch (const JavaExceptionPending&) {
  } catch (const std::invalid_argument& e) {
    throw_java(env, kIllegalArgument, e.what());
  } catch (const std::out_of_range& e) {
    throw_java(env, kIllegalArgument, e.what());
  } catch (const std::bad_alloc&) {
    throw_java(env, kOutOfMemory, "vpr_jni: out of native memory");
  } catch (const std::runtime_error& e) {
    throw_java(env, runtime_error_class, e.what());
  } catch (const std::exception& e) {
    throw_java(env, kRuntime, e.what());
  } catch (...) {
    throw_java(env, kRuntime, "vpr_jni: unknown native error");
  }
  return fallback;
}

template <typename Body>
void guarded_void(JNIEnv* env, Body&& body) {
  guarded<int>(env, 0, kRuntime, [&] {
    body();
    return 0;
  });
}

void check_pending(JNIEnv* env) {
  if (env->ExceptionCheck()) throw JavaExceptionPending{};
}

MapHandle& map_handle(JNIEnv* env, jlong handle) {
  if (handle == 0) {
    throw_java(env, kIllegalState, "the map is closed");
    throw JavaExceptionPending{};
  }
  return *reinterpret_cast<MapHandle*>(handle);
}

SequenceHandle& sequence_handle(JNIEnv* env, jlong handle) {
  if (handle == 0) {
    throw_java(env, kIllegalState, "the sequence matcher is closed");
    throw JavaExceptionPending{};
  }
  return *reinterpret_cast<SequenceHandle*>(handle);
}

const vpr::MapFileView& map_of(JNIEnv* env, jlong handle) {
  return map_handle(env, handle).file->map();
}

// A path as the Java side's UTF-8 bytes (String.getBytes(UTF_8)): the file system's
// encoding. GetStringUTFChars would give JNI's modified UTF-8, which encodes characters
// outside the BMP (an emoji) as two 3-byte surrogates and names another file.
std::string to_path(JNIEnv* env, jbyteArray bytes) {
  if (bytes == nullptr) throw std::invalid_argument("the path is null");
  std::string out(static_cast<std::size_t>(env->GetArrayLength(bytes)), '\0');
  env->GetByteArrayRegion(bytes, 0, static_cast<jsize>(out.size()),
                          reinterpret_cast<jbyte*>(out.data()));
  check_pending(env);
  if (out.find('\0') != std::string::npos) throw std::invalid_argument("the path holds a NUL");
  return out;
}

// Copy of a Java float[] (a descriptor is small; no critical sections).
std::vector<float> to_floats(JNIEnv* env, jfloatArray a) {
  if (a == nullptr) throw std::invalid_argument("the descriptor is null");
  std::vector<float> out(static_cast<std::size_t>(env->GetArrayLength(a)));
  env->GetFloatArrayRegion(a, 0, static_cast<jsize>(out.size()), out.data());
  check_pending(env);
  return out;
}

jbyteArray to_bytes(JNIEnv* env, const char* data, std::size_t size) {
  if (size > static_cast<std::size_t>(std::numeric_limits<jsize>::max())) {
    throw std::length_error("string too long for a Java array");
  }
  jbyteArray out = env->NewByteArray(static_cast<jsize>(size));
  if (out == nullptr) throw JavaExceptionPending{};
  env->SetByteArrayRegion(out, 0, static_cast<jsize>(size), reinterpret_cast<const jbyte*>(data));
  return out;
}

// Copies one query's results into ids/scores (as many as fit); returns the
// number of results.
jint copy_results(JNIEnv* env, const vpr::SearchResults& r, jintArray ids, jfloatArray scores) {
  if (ids == nullptr || scores == nullptr) throw std::invalid_argument("result arrays are null");
  const std::size_t n = std::min(r.ids.size(), r.scores.size());
  const auto room =
      static_cast<std::size_t>(std::min(env->GetArrayLength(ids), env->GetArrayLength(scores)));
  const std::size_t m = std::min(n, room);
  std::vector<jint> ids32(m);
  for (std::size_t i = 0; i < m; ++i) ids32[i] = static_cast<jint>(r.ids[i]);
  env->SetIntArrayRegion(ids, 0, static_cast<jsize>(m), ids32.data());
  check_pending(env);
  env->SetFloatArrayRegion(scores, 0, static_cast<jsize>(m), r.scores.data());
  check_pending(env);
  return static_cast<jint>(n);
}

std::size_t to_size(jint v, const char* what) {
  if (v < 0) throw std::invalid_argument(std::string(what) + " must be >= 0");
  return static_cast<std::size_t>(v);
}

// A validated manifest for Java: numbers (see VprManifest.java for the order) written into
// `numbers`, the text fields returned as UTF-8 separated by NUL bytes.
jbyteArray manifest_to_java(JNIEnv* env, const vpr::BundleManifest& m, jdoubleArray numbers) {
  if (numbers == nullptr || env->GetArrayLength(numbers) < 12) {
    throw std::invalid_argument("VprManifest: the numbers array needs 12 slots");
  }
  const jdouble values[12] = {static_cast<jdouble>(m.height),
                              static_cast<jdouble>(m.width),
                              m.bgr ? 1.0 : 0.0,
                              m.rotate_180 ? 1.0 : 0.0,
                              m.mean[0],
                              m.mean[1],
                              m.mean[2],
                              m.std[0],
                              m.std[1],
                              m.std[2],
                              static_cast<jdouble>(m.descriptor_dim),
                              static_cast<jdouble>(m.pte_bytes)};
  env->SetDoubleArrayRegion(numbers, 0, 12, values);
  check_pending(env);
  std::string text;
  for (const std::string* s : {&m.model_name, &m.quantization, &m.pte_file, &m.pte_sha256}) {
    text += *s;
    text.push_back('\0');
  }
  return to_bytes(env, text.data(), text.size());
}

std::string utf8(JNIEnv* env, jbyteArray bytes, const char* what) {
  if (bytes == nullptr) throw std::invalid_argument(std::string(what) + " is null");
  std::string out(static_cast<std::size_t>(env->GetArrayLength(bytes)), '\0');
  env->GetByteArrayRegion(bytes, 0, static_cast<jsize>(out.size()),
                          reinterpret_cast<jbyte*>(out.data()));
  check_pending(env);
  return out;
}

// k and threads of a map search, checked.
vpr::SearchOptions search_options(jint k, jint threads) {
  vpr::SearchOptions options;
  options.k = to_size(k, "k");
  if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0: all cores)");
  options.num_threads = threads;
  return options;
}

// A frame's descriptor, checked against the dimension the matcher's map takes.
std::vector<float> sequence_query(JNIEnv* env, const SequenceHandle& s, jfloatArray query) {
  std::vector<float> q = to_floats(env, query);
  const std::size_t want = s.file->map().input_dim();
  if (q.size() != want) {
    throw std::invalid_argument("the descriptor has " + std::to_string(q.size()) +
                                " values, the sequence matcher expects " + std::to_string(want));
  }
  return q;
}

// The preprocessing fields of a validated manifest, as VprPreprocessor passes them:
// height, width, bgr, rotate_180, mean[3], std[3] (VprManifest's values, so the same
// floats the C++ manifest reader holds).
vpr::BundleManifest preprocess_spec(JNIEnv* env, jdoubleArray spec) {
  if (spec == nullptr || env->GetArrayLength(spec) != 10) {
    throw std::invalid_argument("VprPreprocessor: the manifest spec needs 10 values");
  }
  jdouble v[10];
  env->GetDoubleArrayRegion(spec, 0, 10, v);
  check_pending(env);
  vpr::BundleManifest m;
  m.height = static_cast<int>(v[0]);
  m.width = static_cast<int>(v[1]);
  m.bgr = v[2] != 0.0;
  m.rotate_180 = v[3] != 0.0;
  for (std::size_t c = 0; c < 3; ++c) {
    m.mean[c] = static_cast<float>(v[4 + c]);
    m.std[c] = static_cast<float>(v[7 + c]);
  }
  if (m.height <= 0 || m.width <= 0) throw std::invalid_argument("bad model input size");
  return m;
}

// Resizes and normalises an RGB8 frame into `out` (3 * height * width floats).
void preprocess_into(JNIEnv* env, const vpr::ImageView& image, const vpr::BundleManifest& m,
                     jfloatArray out) {
  const std::size_t n = 3 * static_cast<std::size_t>(m.width) * static_cast<std::size_t>(m.height);
  if (out == nullptr || static_cast<std::size_t>(env->GetArrayLength(out)) != n) {
    throw std::invalid_argument("the output array must hold 3 x " + std::to_string(m.height) +
                                " x " + std::to_string(m.width) + " = " + std::to_string(n) +
                                " floats");
  }
  std::vector<float> chw(n);
  vpr::preprocess(image, m, chw.data());
  env->SetFloatArrayRegion(out, 0, static_cast<jsize>(n), chw.data());
  check_pending(env);
}

// A direct ByteBuffer's bytes from `position` on (`remaining` of them).
const std::uint8_t* direct_bytes(JNIEnv* env, jobject buffer, jint position, jint remaining,
                                 const char* what) {
  if (buffer == nullptr)
    throw std::invalid_argument(std::string("the ") + what + " buffer is null");
  auto* base = static_cast<std::uint8_t*>(env->GetDirectBufferAddress(buffer));
  const jlong capacity = env->GetDirectBufferCapacity(buffer);
  if (base == nullptr || capacity < 0) {
    throw std::invalid_argument(std::string("the ") + what + " buffer is not a direct ByteBuffer");
  }
  if (position < 0 || remaining < 0 || static_cast<jlong>(position) + remaining > capacity) {
    throw std::invalid_argument(std::string("the ") + what + " buffer's position is out of range");
  }
  return base + position;
}
}  // namespace

extern "C" {

// ---- org.vprembedded.VprManifest ---------------------------------------------
// The one manifest validator (csrc/src/manifest.cpp); a refusal is an
// IllegalArgumentException with the validator's message.

JNIEXPORT jbyteArray JNICALL Java_org_vprembedded_VprManifest_nativeParse(JNIEnv* env, jclass,
                                                                          jbyteArray json,
                                                                          jbyteArray where,
                                                                          jdoubleArray numbers) {
  return guarded<jbyteArray>(env, nullptr, kIllegalArgument, [&] {
    const vpr::BundleManifest m =
        vpr::BundleManifest::parse(utf8(env, json, "the manifest"), utf8(env, where, "where"));
    return manifest_to_java(env, m, numbers);
  });
}

JNIEXPORT jbyteArray JNICALL Java_org_vprembedded_VprManifest_nativeLoad(JNIEnv* env, jclass,
                                                                         jbyteArray folder,
                                                                         jboolean check_pte,
                                                                         jdoubleArray numbers) {
  return guarded<jbyteArray>(env, nullptr, kIllegalArgument, [&] {
    const vpr::BundleManifest m =
        vpr::BundleManifest::load(to_path(env, folder), check_pte == JNI_TRUE);
    return manifest_to_java(env, m, numbers);
  });
}

// ---- org.vprembedded.VprMap ------------------------------------------------

JNIEXPORT jlong JNICALL Java_org_vprembedded_VprMap_nativeOpen(JNIEnv* env, jclass, jbyteArray path,
                                                               jboolean verify_checksum) {
  return guarded<jlong>(env, 0, kIoException, [&] {
    vpr::MapOpenOptions options;
    options.verify_checksum = verify_checksum == JNI_TRUE;
    auto file = std::make_shared<vpr::MapFile>(vpr::MapFile::open(to_path(env, path), options));
    if (file->map().count() > static_cast<std::size_t>(std::numeric_limits<jint>::max())) {
      throw std::runtime_error("map " + file->path() + " has too many places for Java (> 2^31)");
    }
    return reinterpret_cast<jlong>(new MapHandle{std::move(file)});
  });
}

// A second handle on the same mapping (for a sequence matcher).
JNIEXPORT jlong JNICALL Java_org_vprembedded_VprMap_nativeRetain(JNIEnv* env, jclass,
                                                                 jlong handle) {
  return guarded<jlong>(env, 0, kRuntime, [&] {
    return reinterpret_cast<jlong>(new MapHandle{map_handle(env, handle).file});
  });
}

JNIEXPORT void JNICALL Java_org_vprembedded_VprMap_nativeClose(JNIEnv*, jclass, jlong handle) {
  delete reinterpret_cast<MapHandle*>(handle);  // noexcept; null is a no-op
}

JNIEXPORT jint JNICALL Java_org_vprembedded_VprMap_nativeCount(JNIEnv* env, jclass, jlong h) {
  return guarded<jint>(env, 0, kRuntime, [&] { return static_cast<jint>(map_of(env, h).count()); });
}

JNIEXPORT jint JNICALL Java_org_vprembedded_VprMap_nativeDim(JNIEnv* env, jclass, jlong h) {
  return guarded<jint>(env, 0, kRuntime, [&] { return static_cast<jint>(map_of(env, h).dim()); });
}

JNIEXPORT jint JNICALL Java_org_vprembedded_VprMap_nativeInputDim(JNIEnv* env, jclass, jlong h) {
  return guarded<jint>(env, 0, kRuntime,
                       [&] { return static_cast<jint>(map_of(env, h).input_dim()); });
}

JNIEXPORT jint JNICALL Java_org_vprembedded_VprMap_nativeFormatVersion(JNIEnv* env, jclass,
                                                                       jlong h) {
  return guarded<jint>(env, 0, kRuntime,
                       [&] { return static_cast<jint>(map_of(env, h).format_version()); });
}

JNIEXPORT jlong JNICALL Java_org_vprembedded_VprMap_nativeFileSize(JNIEnv* env, jclass, jlong h) {
  return guarded<jlong>(env, 0, kRuntime,
                        [&] { return static_cast<jlong>(map_of(env, h).file_size()); });
}

JNIEXPORT jstring JNICALL Java_org_vprembedded_VprMap_nativeStorage(JNIEnv* env, jclass, jlong h) {
  return guarded<jstring>(env, nullptr, kRuntime, [&] {
    return env->NewStringUTF(vpr::storage_name(map_of(env, h).storage()));  // ASCII
  });
}

JNIEXPORT jstring JNICALL Java_org_vprembedded_VprMap_nativePositionKind(JNIEnv* env, jclass,
                                                                         jlong h) {
  return guarded<jstring>(env, nullptr, kRuntime, [&] {
    return env->NewStringUTF(vpr::position_kind_name(map_of(env, h).position_kind()));  // ASCII
  });
}

JNIEXPORT jstring JNICALL Java_org_vprembedded_VprMap_nativeModelSha256(JNIEnv* env, jclass,
                                                                        jlong h) {
  return guarded<jstring>(env, nullptr, kRuntime, [&] {
    return env->NewStringUTF(map_of(env, h).model_sha256_hex().c_str());  // hex digits
  });
}

// UTF-8 bytes (decoded in Java: NewStringUTF wants modified UTF-8).
JNIEXPORT jbyteArray JNICALL Java_org_vprembedded_VprMap_nativeModelName(JNIEnv* env, jclass,
                                                                         jlong h) {
  return guarded<jbyteArray>(env, nullptr, kRuntime, [&] {
    const std::string& name = map_of(env, h).model_name();
    return to_bytes(env, name.data(), name.size());
  });
}

JNIEXPORT jboolean JNICALL Java_org_vprembedded_VprMap_nativeHasNames(JNIEnv* env, jclass,
                                                                      jlong h) {
  return guarded<jboolean>(env, JNI_FALSE, kRuntime,
                           [&] { return map_of(env, h).has_names() ? JNI_TRUE : JNI_FALSE; });
}

JNIEXPORT jboolean JNICALL Java_org_vprembedded_VprMap_nativeHasPositions(JNIEnv* env, jclass,
                                                                          jlong h) {
  return guarded<jboolean>(env, JNI_FALSE, kRuntime, [&] {
    return map_of(env, h).positions() != nullptr ? JNI_TRUE : JNI_FALSE;
  });
}

// UTF-8 bytes of place i's name; null if the map has no names.
JNIEXPORT jbyteArray JNICALL Java_org_vprembedded_VprMap_nativeName(JNIEnv* env, jclass, jlong h,
                                                                    jint i) {
  return guarded<jbyteArray>(env, nullptr, kRuntime, [&]() -> jbyteArray {
    const auto& map = map_of(env, h);
    const std::size_t index = to_size(i, "the place index");
    if (index >= map.count()) {
      throw std::out_of_range("place index " + std::to_string(index) + " is out of range (" +
                              std::to_string(map.count()) + " places)");
    }
    if (!map.has_names()) return nullptr;
    const std::string_view name = map.name(index);
    return to_bytes(env, name.data(), name.size());
  });
}

// Positions of the places `ids` into out (2 per place); false if the map has none.
JNIEXPORT jboolean JNICALL Java_org_vprembedded_VprMap_nativePositions(JNIEnv* env, jclass, jlong h,
                                                                       jintArray ids,
                                                                       jdoubleArray out) {
  return guarded<jboolean>(env, JNI_FALSE, kRuntime, [&] {
    const auto& map = map_of(env, h);
    if (map.positions() == nullptr) return JNI_FALSE;
    if (ids == nullptr || out == nullptr) throw std::invalid_argument("arrays are null");
    const jsize n = env->GetArrayLength(ids);
    if (env->GetArrayLength(out) < 2 * static_cast<std::int64_t>(n)) {
      throw std::invalid_argument("the positions array is too short");
    }
    std::vector<jint> idx(static_cast<std::size_t>(n));
    env->GetIntArrayRegion(ids, 0, n, idx.data());
    check_pending(env);
    std::vector<jdouble> xy(2 * idx.size());
    for (std::size_t j = 0; j < idx.size(); ++j) {
      const std::size_t i = to_size(idx[j], "a place index");
      if (i >= map.count()) throw std::out_of_range("place index out of range");
      xy[2 * j] = map.positions()[2 * i];
      xy[2 * j + 1] = map.positions()[2 * i + 1];
    }
    env->SetDoubleArrayRegion(out, 0, static_cast<jsize>(xy.size()), xy.data());
    check_pending(env);
    return JNI_TRUE;
  });
}

// Top-k places of one query into ids/scores; returns min(k, count).
JNIEXPORT jint JNICALL Java_org_vprembedded_VprMap_nativeSearch(JNIEnv* env, jclass, jlong h,
                                                                jfloatArray query, jint k,
                                                                jint threads, jintArray ids,
                                                                jfloatArray scores) {
  return guarded<jint>(env, 0, kRuntime, [&] {
    const auto& map = map_of(env, h);
    const std::vector<float> q = to_floats(env, query);
    vpr::SearchOptions options = search_options(k, threads);
    const vpr::SearchResults r = map.search(q.data(), 1, q.size(), options);
    return copy_results(env, r, ids, scores);
  });
}

// Top-k of one query among the places within `radius` of (x, y) (the position prior);
// returns how many were found: min(k, places inside), possibly 0.
JNIEXPORT jint JNICALL Java_org_vprembedded_VprMap_nativeSearchNear(
    JNIEnv* env, jclass, jlong h, jfloatArray query, jint k, jint threads, jdouble x, jdouble y,
    jdouble radius, jintArray ids, jfloatArray scores) {
  return guarded<jint>(env, 0, kRuntime, [&] {
    const auto& map = map_of(env, h);
    const std::vector<float> q = to_floats(env, query);
    vpr::SearchOptions options = search_options(k, threads);
    const std::vector<std::uint32_t> near = map.places_near(x, y, radius);
    options.restrict_to_candidates = true;
    options.candidates = near.data();
    options.num_candidates = near.size();
    const vpr::SearchResults r = map.search(q.data(), 1, q.size(), options);
    return copy_results(env, r, ids, scores);
  });
}

// ---- org.vprembedded.VprSequenceMatcher -------------------------------------

JNIEXPORT jlong JNICALL Java_org_vprembedded_VprSequenceMatcher_nativeCreate(
    JNIEnv* env, jclass, jlong map, jint length, jfloat v_min, jfloat v_max, jint v_steps,
    jint contrast_window, jint k, jint threads) {
  return guarded<jlong>(env, 0, kRuntime, [&] {
    const MapHandle& m = map_handle(env, map);
    vpr::SequenceOptions options;
    options.length = to_size(length, "length");
    options.v_min = v_min;
    options.v_max = v_max;
    options.v_steps = to_size(v_steps, "vSteps");
    options.contrast_window = to_size(contrast_window, "contrastWindow");
    options.k = to_size(k, "k");
    if (threads < 0) throw std::invalid_argument("threads must be >= 0 (0: all cores)");
    options.num_threads = threads;
    options.validate();
    return reinterpret_cast<jlong>(new SequenceHandle(m.file, options));
  });
}

JNIEXPORT void JNICALL Java_org_vprembedded_VprSequenceMatcher_nativeDestroy(JNIEnv*, jclass,
                                                                             jlong handle) {
  delete reinterpret_cast<SequenceHandle*>(handle);
}

JNIEXPORT jint JNICALL Java_org_vprembedded_VprSequenceMatcher_nativePush(
    JNIEnv* env, jclass, jlong h, jfloatArray query, jintArray ids, jfloatArray scores) {
  return guarded<jint>(env, 0, kRuntime, [&] {
    SequenceHandle& s = sequence_handle(env, h);
    const std::vector<float> q = sequence_query(env, s, query);
    return copy_results(env, s.matcher.push(q.data(), q.size()), ids, scores);
  });
}

// One frame with the position prior's window: the places within `radius` of (x, y).
JNIEXPORT jint JNICALL Java_org_vprembedded_VprSequenceMatcher_nativePushNear(
    JNIEnv* env, jclass, jlong h, jfloatArray query, jdouble x, jdouble y, jdouble radius,
    jintArray ids, jfloatArray scores) {
  return guarded<jint>(env, 0, kRuntime, [&] {
    SequenceHandle& s = sequence_handle(env, h);
    const std::vector<float> q = sequence_query(env, s, query);
    const std::vector<std::uint32_t> window = s.file->map().places_near(x, y, radius);
    return copy_results(env, s.matcher.push(q.data(), q.size(), window.data(), window.size()), ids,
                        scores);
  });
}

JNIEXPORT jint JNICALL Java_org_vprembedded_VprSequenceMatcher_nativeK(JNIEnv* env, jclass,
                                                                       jlong h) {
  return guarded<jint>(env, 0, kRuntime, [&] {
    const std::size_t k = sequence_handle(env, h).matcher.scorer().options().k;
    return static_cast<jint>(std::min<std::size_t>(k, std::numeric_limits<jint>::max()));
  });
}

JNIEXPORT void JNICALL Java_org_vprembedded_VprSequenceMatcher_nativeReset(JNIEnv* env, jclass,
                                                                           jlong h) {
  guarded_void(env, [&] { sequence_handle(env, h).matcher.reset(); });
}

JNIEXPORT jint JNICALL Java_org_vprembedded_VprSequenceMatcher_nativeFrames(JNIEnv* env, jclass,
                                                                            jlong h) {
  return guarded<jint>(env, 0, kRuntime, [&] {
    return static_cast<jint>(sequence_handle(env, h).matcher.scorer().frames());
  });
}

// Sequence score of every place after the last push, into out (count values).
JNIEXPORT void JNICALL Java_org_vprembedded_VprSequenceMatcher_nativeSequenceScores(
    JNIEnv* env, jclass, jlong h, jfloatArray out) {
  guarded_void(env, [&] {
    const std::vector<float>& s = sequence_handle(env, h).matcher.scorer().sequence_scores();
    if (out == nullptr || static_cast<std::size_t>(env->GetArrayLength(out)) < s.size()) {
      throw std::invalid_argument("the scores array is too short");
    }
    env->SetFloatArrayRegion(out, 0, static_cast<jsize>(s.size()), s.data());
  });
}

// ---- org.vprembedded.VprPreprocessor -------------------------------------------
// Frames -> model input through vpr_core's preprocess (csrc/src/preprocess.cpp), the
// code vpr-localize and the Python localizer run; camera planes through libyuv
// (camera_frame.cpp).

JNIEXPORT void JNICALL Java_org_vprembedded_VprPreprocessor_nativeRgb(JNIEnv* env, jclass,
                                                                      jdoubleArray spec,
                                                                      jbyteArray rgb, jint width,
                                                                      jint height, jint row_stride,
                                                                      jfloatArray out) {
  guarded_void(env, [&] {
    const vpr::BundleManifest m = preprocess_spec(env, spec);
    if (rgb == nullptr) throw std::invalid_argument("the RGB array is null");
    if (width <= 0 || height <= 0) throw std::invalid_argument("bad image size");
    const std::size_t stride = row_stride == 0 ? static_cast<std::size_t>(width) * 3
                                               : static_cast<std::size_t>(row_stride);
    if (row_stride < 0 || stride < static_cast<std::size_t>(width) * 3) {
      throw std::invalid_argument("the row stride must be 0 (packed) or at least width * 3");
    }
    const std::size_t need =
        (static_cast<std::size_t>(height) - 1) * stride + static_cast<std::size_t>(width) * 3;
    const auto have = static_cast<std::size_t>(env->GetArrayLength(rgb));
    if (have < need) {
      throw std::invalid_argument("the RGB array has " + std::to_string(have) + " bytes, a " +
                                  std::to_string(width) + "x" + std::to_string(height) +
                                  " image needs " + std::to_string(need));
    }
    std::vector<std::uint8_t> pixels(need);
    env->GetByteArrayRegion(rgb, 0, static_cast<jsize>(need),
                            reinterpret_cast<jbyte*>(pixels.data()));
    check_pending(env);
    preprocess_into(env, vpr::ImageView{pixels.data(), width, height, stride}, m, out);
  });
}

JNIEXPORT void JNICALL Java_org_vprembedded_VprPreprocessor_nativeArgb(JNIEnv* env, jclass,
                                                                       jdoubleArray spec,
                                                                       jintArray argb, jint width,
                                                                       jint height,
                                                                       jfloatArray out) {
  guarded_void(env, [&] {
    const vpr::BundleManifest m = preprocess_spec(env, spec);
    if (argb == nullptr) throw std::invalid_argument("the ARGB array is null");
    if (width <= 0 || height <= 0) throw std::invalid_argument("bad image size");
    const std::size_t need = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
    const auto have = static_cast<std::size_t>(env->GetArrayLength(argb));
    if (have < need) {
      throw std::invalid_argument("the ARGB array has " + std::to_string(have) + " pixels, a " +
                                  std::to_string(width) + "x" + std::to_string(height) +
                                  " image needs " + std::to_string(need));
    }
    std::vector<std::int32_t> pixels(need);
    env->GetIntArrayRegion(argb, 0, static_cast<jsize>(need),
                           reinterpret_cast<jint*>(pixels.data()));
    check_pending(env);
    const std::vector<std::uint8_t> rgb = vpr::jni::argb_to_rgb(pixels.data(), width, height);
    preprocess_into(env, vpr::ImageView{rgb.data(), width, height, 0}, m, out);
  });
}

JNIEXPORT void JNICALL Java_org_vprembedded_VprPreprocessor_nativeYuv420(
    JNIEnv* env, jclass, jdoubleArray spec, jobject y, jint y_position, jint y_remaining,
    jint y_row_stride, jobject u, jint u_position, jint u_remaining, jobject v, jint v_position,
    jint v_remaining, jint uv_row_stride, jint uv_pixel_stride, jint width, jint height,
    jint rotation_degrees, jfloatArray out) {
  guarded_void(env, [&] {
    const vpr::BundleManifest m = preprocess_spec(env, spec);
    vpr::jni::Yuv420Planes p;
    p.y = direct_bytes(env, y, y_position, y_remaining, "Y");
    p.y_bytes = static_cast<std::size_t>(y_remaining);
    p.y_row_stride = y_row_stride;
    p.u = direct_bytes(env, u, u_position, u_remaining, "U");
    p.u_bytes = static_cast<std::size_t>(u_remaining);
    p.v = direct_bytes(env, v, v_position, v_remaining, "V");
    p.v_bytes = static_cast<std::size_t>(v_remaining);
    p.uv_row_stride = uv_row_stride;
    p.uv_pixel_stride = uv_pixel_stride;
    p.width = width;
    p.height = height;
    const vpr::jni::RgbFrame frame = vpr::jni::yuv420_to_rgb(p, rotation_degrees);
    preprocess_into(env, vpr::ImageView{frame.rgb.data(), frame.width, frame.height, 0}, m, out);
  });
}

}  // extern "C"
