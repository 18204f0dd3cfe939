package org.vprembedded;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A memory-mapped map file ({@code .vprmap}) searched by the C++ core through the {@code vpr_jni}
 * library. The method names follow Python's {@code vpr_embedded.maps.Map}: {@code open}, {@code
 * search}, {@code count}, {@code dim}, {@code inputDim}, {@code storage}, ...
 *
 * <p>Errors a caller can cause are Java exceptions, never a crash: a missing file is a {@link
 * FileNotFoundException}, a corrupt, truncated or foreign file an {@link IOException}, a descriptor
 * of the wrong length or a bad {@code k} an {@link IllegalArgumentException}, and any use after
 * {@link #close()} an {@link IllegalStateException}. Methods are thread-safe (calls on one map are
 * serialised). A map that is dropped without {@link #close()} is unmapped once it has been
 * garbage-collected; close it to release the mapping at once.
 */
public final class VprMap implements AutoCloseable {
  static {
    System.loadLibrary("vpr_jni");
  }

  private final String path;
  // Released by close(), or by NativeResource's reaper if the map is dropped unclosed.
  private final NativeResource resource;

  private VprMap(String path, long handle) {
    this.path = path;
    this.resource = new NativeResource(this, handle, VprMap::nativeClose);
  }

  /** Opens and validates a map, checksums included. */
  public static VprMap open(String path) throws IOException {
    return open(path, true);
  }

  /**
   * Opens a map. Structural checks (sizes, offsets) are always done; {@code verifyChecksum} also
   * reads the whole file once to check its CRC-32 checksums.
   */
  public static VprMap open(String path, boolean verifyChecksum) throws IOException {
    if (path == null) {
      throw new IllegalArgumentException("the map path is null");
    }
    if (!new File(path).isFile()) {
      throw new FileNotFoundException("map " + path + " does not exist");
    }
    // The path's bytes as the file system sees them (UTF-8), not JNI's modified UTF-8, which
    // encodes characters outside the BMP (an emoji) differently and would miss the file.
    return new VprMap(path, nativeOpen(path.getBytes(StandardCharsets.UTF_8), verifyChecksum));
  }

  /**
   * Maps and sequence matchers whose native memory is not released yet: neither closed nor
   * garbage-collected (for leak checks).
   */
  public static int liveNativeObjects() {
    return NativeResource.liveCount();
  }

  public String path() {
    return path;
  }

  /** Number of places. */
  public int count() {
    synchronized (resource) {
      return nativeCount(live());
    }
  }

  /** Dimension of the stored descriptors (after the projection, if any). */
  public int dim() {
    synchronized (resource) {
      return nativeDim(live());
    }
  }

  /** Dimension of the model's descriptors, i.e. of the queries. */
  public int inputDim() {
    synchronized (resource) {
      return nativeInputDim(live());
    }
  }

  /** "float32", "float16", "int8" or "binary". */
  public String storage() {
    synchronized (resource) {
      return nativeStorage(live());
    }
  }

  public int formatVersion() {
    synchronized (resource) {
      return nativeFormatVersion(live());
    }
  }

  /** Size of the map file in bytes. */
  public long nbytes() {
    synchronized (resource) {
      return nativeFileSize(live());
    }
  }

  public String modelName() {
    synchronized (resource) {
      return new String(nativeModelName(live()), StandardCharsets.UTF_8);
    }
  }

  /** sha256 (hex) of the model bundle that made the descriptors. */
  public String modelSha256() {
    synchronized (resource) {
      return nativeModelSha256(live());
    }
  }

  /** "latlon" or "utm", or null if the map has no positions. */
  public String positionKind() {
    synchronized (resource) {
      String kind = nativePositionKind(live());
      return "none".equals(kind) ? null : kind;
    }
  }

  public boolean hasNames() {
    synchronized (resource) {
      return nativeHasNames(live());
    }
  }

  public boolean hasPositions() {
    synchronized (resource) {
      return nativeHasPositions(live());
    }
  }

  /** Name of place {@code id}, or null if the map has no names. */
  public String name(int id) {
    synchronized (resource) {
      byte[] name = nativeName(live(), id);
      return name == null ? null : new String(name, StandardCharsets.UTF_8);
    }
  }

  /** Top-{@code k} places of one query descriptor, searched with all cores. */
  public VprSearchResult search(float[] descriptor, int k) {
    return search(descriptor, k, 0);
  }

  /**
   * Top-{@code k} places of one query descriptor (the model's raw descriptor: the map's projection
   * is applied by the C++ core), with {@code threads} threads (0: all cores).
   */
  public VprSearchResult search(float[] descriptor, int k, int threads) {
    synchronized (resource) {
      long h = live();
      checkSearch(h, descriptor, k, threads);
      int n = Math.min(k, nativeCount(h));
      int[] ids = new int[n];
      float[] scores = new float[n];
      int found = nativeSearch(h, descriptor, k, threads, ids, scores);
      return result(h, ids, scores, found);
    }
  }

  /**
   * Top-{@code k} places of one query descriptor among the places stored within {@code radius} of
   * ({@code x}, {@code y}): the position prior (GPS, odometry). Units: metres for a lat/lon map
   * (x = latitude, y = longitude in degrees), the positions' own unit otherwise. Fewer than
   * {@code k} results, or none, when few places lie inside. {@code threads}: 0 for all cores.
   */
  public VprSearchResult searchNear(
      float[] descriptor, int k, double x, double y, double radius, int threads) {
    synchronized (resource) {
      long h = live();
      checkSearch(h, descriptor, k, threads);
      if (!nativeHasPositions(h)) {
        throw new IllegalArgumentException(
            "map " + path + " has no positions: rebuild it with positions to search near one");
      }
      if (!(radius >= 0.0) || Double.isInfinite(radius)) {
        throw new IllegalArgumentException("radius must be finite and >= 0, got " + radius);
      }
      int n = Math.min(k, nativeCount(h));
      int[] ids = new int[n];
      float[] scores = new float[n];
      int found = nativeSearchNear(h, descriptor, k, threads, x, y, radius, ids, scores);
      if (found < n) {
        ids = Arrays.copyOf(ids, found);
        scores = Arrays.copyOf(scores, found);
      }
      return result(h, ids, scores, found);
    }
  }

  /** Unmaps the file (sequence matchers made from this map keep their own mapping). */
  @Override
  public void close() {
    resource.release();
  }

  public boolean isClosed() {
    synchronized (resource) {
      return resource.handle() == 0;
    }
  }

  @Override
  public String toString() {
    if (isClosed()) {
      return "VprMap('" + path + "', closed)";
    }
    return "VprMap('" + path + "', count=" + count() + ", dim=" + dim() + ", storage='" + storage()
        + "', model='" + modelName() + "')";
  }

  /** A second VprMap sharing this one's mapping (for a sequence matcher). */
  VprMap retain() {
    synchronized (resource) {
      return new VprMap(path, nativeRetain(live()));
    }
  }

  long live() {
    synchronized (resource) {
      long handle = resource.handle();
      if (handle == 0) {
        throw new IllegalStateException("map " + path + " is closed");
      }
      return handle;
    }
  }

  private static void checkSearch(long h, float[] descriptor, int k, int threads) {
    checkDescriptor(descriptor, nativeInputDim(h));
    if (k <= 0) {
      throw new IllegalArgumentException("k must be a positive integer, got " + k);
    }
    if (threads < 0) {
      throw new IllegalArgumentException("threads must be >= 0 (0: all cores), got " + threads);
    }
  }

  static void checkDescriptor(float[] descriptor, int dim) {
    if (descriptor == null) {
      throw new IllegalArgumentException("the descriptor is null");
    }
    if (descriptor.length != dim) {
      throw new IllegalArgumentException("the descriptor has " + descriptor.length
          + " values, but the map was built with a model"
          + " of descriptor dimension " + dim);
    }
  }

  /** Result with names and positions of the first {@code found} ids. */
  VprSearchResult result(long h, int[] ids, float[] scores, int found) {
    synchronized (resource) {
      if (found != ids.length) {
        throw new IllegalStateException(
            "native search returned " + found + " results, not " + ids.length);
      }
      String[] names = null;
      if (nativeHasNames(h)) {
        names = new String[ids.length];
        for (int i = 0; i < ids.length; i++) {
          names[i] = new String(nativeName(h, ids[i]), StandardCharsets.UTF_8);
        }
      }
      double[] positions = new double[2 * ids.length];
      if (!nativePositions(h, ids, positions)) {
        positions = null;
      }
      return new VprSearchResult(ids, scores, names, positions);
    }
  }

  private static native long nativeOpen(byte[] path, boolean verifyChecksum) throws IOException;

  private static native long nativeRetain(long handle);

  private static native void nativeClose(long handle);

  private static native int nativeCount(long handle);

  private static native int nativeDim(long handle);

  private static native int nativeInputDim(long handle);

  private static native int nativeFormatVersion(long handle);

  private static native long nativeFileSize(long handle);

  private static native String nativeStorage(long handle);

  private static native String nativePositionKind(long handle);

  private static native String nativeModelSha256(long handle);

  private static native byte[] nativeModelName(long handle);

  private static native boolean nativeHasNames(long handle);

  private static native boolean nativeHasPositions(long handle);

  private static native byte[] nativeName(long handle, int id);

  private static native boolean nativePositions(long handle, int[] ids, double[] out);

  private static native int nativeSearchNear(long handle, float[] query, int k, int threads,
      double x, double y, double radius, int[] ids, float[] scores);

  private static native int nativeSearch(
      long handle, float[] query, int k, int threads, int[] ids, float[] scores);
}
