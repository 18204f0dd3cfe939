package org.vprembedded;

/**
 * Online sequence matcher (SeqSLAM-style) over a {@link VprMap}: {@link #push(float[])} one query
 * descriptor per frame, get the top-k places by sequence score. The Java counterpart of Python's
 * {@code vpr_embedded.sequence.SequenceMatcher}.
 *
 * <p>The matcher holds its own reference to the map's memory mapping, so closing the {@code VprMap}
 * first is safe. Methods are thread-safe; use after {@link #close()} throws {@link
 * IllegalStateException}.
 */
public final class VprSequenceMatcher implements AutoCloseable {
  /** Sequence matching settings; the defaults are SeqSLAM's, as in Python's SequenceConfig. */
  public static final class Config {
    /** Query frames per sequence. */
    public int length = 10;
    /** Velocities searched, in database places per query frame. */
    public float vMin = 0.8f;
    public float vMax = 1.25f;
    /** Number of velocities, linearly spaced in [vMin, vMax]. */
    public int vSteps = 5;
    /** Places in the local contrast normalisation window (at least 2). */
    public int contrastWindow = 10;
    /** Results per push. */
    public int k = 5;
    /** Threads that score a frame (0: all cores). */
    public int threads = 1;
  }

  private final VprMap map;
  private final int inputDim;
  private final int count;
  // Released by close(), or by NativeResource's reaper if the matcher is dropped unclosed.
  private final NativeResource resource;

  public VprSequenceMatcher(VprMap database) {
    this(database, new Config());
  }

  /** Throws IllegalArgumentException for invalid settings, IllegalStateException if closed. */
  public VprSequenceMatcher(VprMap database, Config config) {
    if (database == null || config == null) {
      throw new IllegalArgumentException("the map and the config must not be null");
    }
    VprMap own = database.retain();
    long handle;
    try {
      handle = nativeCreate(own.live(), config.length, config.vMin, config.vMax, config.vSteps,
          config.contrastWindow, config.k, config.threads);
      inputDim = own.inputDim();
      count = own.count();
    } catch (RuntimeException e) {
      own.close();
      throw e;
    }
    map = own;
    resource = new NativeResource(this, handle, VprSequenceMatcher::nativeDestroy);
  }

  /** Adds one query frame's descriptor; returns the top-k places by sequence score. */
  public VprSearchResult push(float[] descriptor) {
    synchronized (resource) {
      long h = live();
      VprMap.checkDescriptor(descriptor, inputDim);
      int n = Math.min(nativeK(h), count);
      int[] ids = new int[n];
      float[] scores = new float[n];
      int found = nativePush(h, descriptor, ids, scores);
      return map.result(map.live(), ids, scores, found);
    }
  }

  /**
   * Adds one query frame with the position prior as a window that moves with the robot: only
   * places within {@code radius} of ({@code x}, {@code y}) belong to this frame (units as in
   * {@link VprMap#searchNear}); the others are out of it (score -inf). Needs a map with positions.
   */
  public VprSearchResult pushNear(float[] descriptor, double x, double y, double radius) {
    synchronized (resource) {
      long h = live();
      VprMap.checkDescriptor(descriptor, inputDim);
      if (!(radius >= 0.0) || Double.isInfinite(radius)) {
        throw new IllegalArgumentException("radius must be finite and >= 0, got " + radius);
      }
      int n = Math.min(nativeK(h), count);
      int[] ids = new int[n];
      float[] scores = new float[n];
      int found = nativePushNear(h, descriptor, x, y, radius, ids, scores);
      return map.result(map.live(), ids, scores, found);
    }
  }

  /** Forgets the frames held (a new traversal starts). */
  public void reset() {
    synchronized (resource) {
      nativeReset(live());
    }
  }

  /** Query frames held (at most the sequence length). */
  public int frames() {
    synchronized (resource) {
      return nativeFrames(live());
    }
  }

  /** Number of places. */
  public int count() {
    return count;
  }

  /** Dimension of the query descriptors. */
  public int inputDim() {
    return inputDim;
  }

  /** Sequence score of every place after the last push. */
  public float[] sequenceScores() {
    synchronized (resource) {
      float[] out = new float[count];
      nativeSequenceScores(live(), out);
      return out;
    }
  }

  @Override
  public void close() {
    synchronized (resource) {
      if (resource.handle() != 0) {
        resource.release();
        map.close();
      }
    }
  }

  private long live() {
    synchronized (resource) {
      long handle = resource.handle();
      if (handle == 0) {
        throw new IllegalStateException("the sequence matcher is closed");
      }
      return handle;
    }
  }

  private static native long nativeCreate(long map, int length, float vMin, float vMax, int vSteps,
      int contrastWindow, int k, int threads);

  private static native void nativeDestroy(long handle);

  private static native int nativeK(long handle);

  private static native int nativePush(long handle, float[] query, int[] ids, float[] scores);

  private static native int nativePushNear(long handle, float[] query, double x, double y,
      double radius, int[] ids, float[] scores);

  private static native void nativeReset(long handle);

  private static native int nativeFrames(long handle);

  private static native void nativeSequenceScores(long handle, float[] out);
}
