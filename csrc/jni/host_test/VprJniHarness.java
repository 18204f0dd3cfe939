import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Locale;
import org.vprembedded.VprManifest;
import org.vprembedded.VprMap;
import org.vprembedded.VprPreprocessor;
import org.vprembedded.VprSearchResult;
import org.vprembedded.VprSequenceMatcher;

/**
 * Host harness of the JNI bridge, driven by tests/test_jni.py. Prints one JSON object per line.
 *
 * <pre>
 * near MAP QUERIES K X Y R          per query "near" (top-k within R of (X, Y)) and
 *                                  "sequence_near" (L = 3, the same window every frame)
 * search MAP QUERIES K SEQ_LENGTH  queries: little-endian float32, rows of the map's input dim;
 *                                  prints "info", then per query "search" and "sequence"
 * errors MAP MISSING CORRUPT...    bad inputs; prints one "case" per input with the exception
 *                                  (cases "corrupt_map:0", "corrupt_map:1", ... per corrupt file)
 * open MAP                         opens MAP (any UTF-8 path); prints "opened" with its count
 * leak MAP N                       opens N maps and N sequence matchers, never closes them, drops
 *                                  them, collects garbage; prints "leak" with the native objects
 *                                  still alive before and after
 * race MAP THREADS                 THREADS threads search one map while another closes it;
 *                                  prints "race" with the counts of results and of exceptions
 * manifests FILE...                each manifest through VprManifest.parse: prints "manifest"
 *                                  with the file name and the refusal's message (null: accepted)
 * rgb BUNDLE RGB W H STRIDE OUT     VprPreprocessor.fromRgb of a raw RGB8 file; OUT: the tensor
 *                                  (little-endian float32); prints "preprocessed"
 * argb BUNDLE ARGB W H OUT          fromArgb of a file of little-endian 0xAARRGGBB ints
 * yuv BUNDLE W H ROTATION Y Y_STRIDE CHROMA LAYOUT UV_STRIDE OUT [heap]
 *                                  fromYuv420 of a frame's planes: Y (rows of Y_STRIDE bytes),
 *                                  CHROMA planar (U rows then V rows) or nv12/nv21 (one
 *                                  interleaved plane, U and V as two views of it, as Android
 *                                  gives them); heap: the buffers are not direct
 * preprocess-errors BUNDLE          bad inputs to VprPreprocessor: prints one "case" each
 * </pre>
 *
 * Always ends with {"event":"done"} and exit status 0 unless the harness itself is misused.
 */
public final class VprJniHarness {
  private VprJniHarness() {}

  public static void main(String[] args) throws IOException {
    if (args.length == 5 && args[0].equals("search")) {
      search(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
    } else if (args.length == 7 && args[0].equals("near")) {
      near(args[1], args[2], Integer.parseInt(args[3]), Double.parseDouble(args[4]),
          Double.parseDouble(args[5]), Double.parseDouble(args[6]));
    } else if (args.length >= 4 && args[0].equals("errors")) {
      errors(args[1], args[2], Arrays.copyOfRange(args, 3, args.length));
    } else if (args.length == 2 && args[0].equals("open")) {
      try (VprMap map = VprMap.open(args[1])) {
        System.out.println("{\"event\":\"opened\",\"count\":" + map.count() + "}");
      }
    } else if (args.length == 3 && args[0].equals("leak")) {
      leak(args[1], Integer.parseInt(args[2]));
    } else if (args.length == 3 && args[0].equals("race")) {
      race(args[1], Integer.parseInt(args[2]));
    } else if (args.length >= 2 && args[0].equals("manifests")) {
      manifests(Arrays.copyOfRange(args, 1, args.length));
    } else if (args.length == 7 && args[0].equals("rgb")) {
      VprPreprocessor p = preprocessor(args[1]);
      float[] out = new float[p.size()];
      p.fromRgb(Files.readAllBytes(Paths.get(args[2])), Integer.parseInt(args[3]),
          Integer.parseInt(args[4]), Integer.parseInt(args[5]), out);
      writeFloats(args[6], out);
    } else if (args.length == 6 && args[0].equals("argb")) {
      VprPreprocessor p = preprocessor(args[1]);
      ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(Paths.get(args[2])))
          .order(ByteOrder.LITTLE_ENDIAN);
      int[] argb = new int[b.remaining() / 4];
      b.asIntBuffer().get(argb);
      float[] out = new float[p.size()];
      p.fromArgb(argb, Integer.parseInt(args[3]), Integer.parseInt(args[4]), out);
      writeFloats(args[5], out);
    } else if ((args.length == 11 || args.length == 12) && args[0].equals("yuv")) {
      yuv(args);
    } else if (args.length == 2 && args[0].equals("preprocess-errors")) {
      preprocessErrors(preprocessor(args[1]));
    } else {
      System.err.println("usage: VprJniHarness search MAP QUERIES K SEQ_LENGTH");
      System.err.println("       VprJniHarness errors MAP MISSING_MAP CORRUPT_MAP...");
      System.err.println("       VprJniHarness open MAP | leak MAP N | race MAP THREADS");
      System.exit(2);
    }
    System.out.println("{\"event\":\"done\"}");
  }

  private static void search(String mapPath, String queryPath, int k, int seqLength)
      throws IOException {
    try (VprMap map = VprMap.open(mapPath)) {
      int dim = map.inputDim();
      float[][] queries = readQueries(queryPath, dim);
      System.out.println(String.format(Locale.ROOT,
          "{\"event\":\"info\",\"count\":%d,\"dim\":%d,\"input_dim\":%d,\"storage\":%s,"
              + "\"model_name\":%s,\"model_sha256\":%s,\"position_kind\":%s,\"nbytes\":%d,"
              + "\"format_version\":%d,\"has_names\":%b,\"has_positions\":%b}",
          map.count(), map.dim(), dim, quote(map.storage()), quote(map.modelName()),
          quote(map.modelSha256()), quote(map.positionKind()), map.nbytes(), map.formatVersion(),
          map.hasNames(), map.hasPositions()));
      VprSequenceMatcher.Config config = new VprSequenceMatcher.Config();
      config.length = seqLength;
      config.k = k;
      try (VprSequenceMatcher sequence = new VprSequenceMatcher(map, config)) {
        for (int j = 0; j < queries.length; j++) {
          System.out.println(result("search", j, map.search(queries[j], k)));
          System.out.println(result("sequence", j, sequence.push(queries[j])));
        }
      }
    }
  }

  private static void near(String mapPath, String queryPath, int k, double x, double y,
      double radius) throws IOException {
    try (VprMap map = VprMap.open(mapPath)) {
      float[][] queries = readQueries(queryPath, map.inputDim());
      VprSequenceMatcher.Config config = new VprSequenceMatcher.Config();
      config.length = 3;
      config.k = k;
      try (VprSequenceMatcher sequence = new VprSequenceMatcher(map, config)) {
        for (int j = 0; j < queries.length; j++) {
          System.out.println(result("near", j, map.searchNear(queries[j], k, x, y, radius, 1)));
          System.out.println(result("sequence_near", j, sequence.pushNear(queries[j], x, y, radius)));
        }
      }
    }
  }

  private static void errors(String mapPath, String missing, String[] corrupt) throws IOException {
    run("missing_map", () -> VprMap.open(missing).close());
    for (int i = 0; i < corrupt.length; i++) {
      String path = corrupt[i];
      run("corrupt_map:" + i, () -> VprMap.open(path).close());
    }
    run("null_path", () -> VprMap.open(null).close());
    VprMap map = VprMap.open(mapPath);
    int dim = map.inputDim();
    float[] good = new float[dim];
    good[0] = 1.0f;
    run("wrong_dim_short", () -> map.search(new float[dim - 1], 1));
    run("wrong_dim_long", () -> map.search(new float[dim + 1], 1));
    run("null_descriptor", () -> map.search(null, 1));
    run("bad_k", () -> map.search(good, 0));
    run("bad_threads", () -> map.search(good, 1, -1));
    run("bad_name_index", () -> map.name(-1));
    run("large_k", () -> check(map.search(good, Integer.MAX_VALUE).size() == map.count()));
    VprSequenceMatcher.Config bad = new VprSequenceMatcher.Config();
    bad.contrastWindow = 1;
    run("bad_sequence_config", () -> new VprSequenceMatcher(map, bad).close());
    VprSequenceMatcher sequence = new VprSequenceMatcher(map);
    run("sequence_wrong_dim", () -> sequence.push(new float[dim + 3]));
    map.close();
    run("map_closed_twice", map::close);
    run("search_after_close", () -> map.search(good, 1));
    run("count_after_close", map::count);
    run("sequence_after_map_close", () -> check(sequence.push(good).size() > 0));
    run("sequence_from_closed_map", () -> new VprSequenceMatcher(map).close());
    sequence.close();
    run("push_after_close", () -> sequence.push(good));
  }

  private static void leak(String mapPath, int n) throws IOException {
    int before = VprMap.liveNativeObjects();
    for (int i = 0; i < n; i++) {
      VprMap map = VprMap.open(mapPath);
      new VprSequenceMatcher(map);  // holds its own reference to the mapping
    }
    int dropped = VprMap.liveNativeObjects() - before;
    long deadline = System.nanoTime() + 30_000_000_000L;
    while (VprMap.liveNativeObjects() > before && System.nanoTime() < deadline) {
      System.gc();
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        break;
      }
    }
    System.out.println("{\"event\":\"leak\",\"opened\":" + n + ",\"live_after_drop\":"
        + dropped + ",\"live_after_gc\":" + (VprMap.liveNativeObjects() - before) + "}");
  }

  private static void race(String mapPath, int threads) throws IOException {
    VprMap map = VprMap.open(mapPath);
    float[] query = new float[map.inputDim()];
    query[0] = 1.0f;
    final int[] results = new int[threads];
    final int[] closed = new int[threads];
    final String[] other = new String[threads];
    Thread[] pool = new Thread[threads];
    for (int t = 0; t < threads; t++) {
      final int me = t;
      pool[t] = new Thread(() -> {
        for (int i = 0; i < 2000; i++) {
          try {
            if (map.search(query, 3, 1).size() == 3) {
              results[me]++;
            }
          } catch (IllegalStateException e) {
            closed[me]++;
          } catch (RuntimeException e) {
            other[me] = e.toString();
          }
        }
      });
      pool[t].start();
    }
    try {
      Thread.sleep(5);
      map.close();
      for (Thread t : pool) {
        t.join();
      }
    } catch (InterruptedException e) {
      throw new IOException(e);
    }
    int ok = 0;
    int afterClose = 0;
    String unexpected = null;
    for (int t = 0; t < threads; t++) {
      ok += results[t];
      afterClose += closed[t];
      unexpected = unexpected != null ? unexpected : other[t];
    }
    System.out.println("{\"event\":\"race\",\"results\":" + ok + ",\"closed\":" + afterClose
        + ",\"unexpected\":" + quote(unexpected) + "}");
  }

  private static void manifests(String[] files) throws IOException {
    for (String file : files) {
      String name = Paths.get(file).getFileName().toString();
      String refused = null;
      try {
        String text = new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8);
        VprManifest.parse(text, name);
      } catch (IllegalArgumentException e) {
        refused = e.getMessage();
      }
      System.out.println(
          "{\"event\":\"manifest\",\"file\":" + quote(name) + ",\"refused\":" + quote(refused) + "}");
    }
  }

  private static VprPreprocessor preprocessor(String bundle) {
    return new VprPreprocessor(VprManifest.load(bundle, false));
  }

  private static void writeFloats(String path, float[] values) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    Files.write(Paths.get(path), b.array());
    System.out.println("{\"event\":\"preprocessed\",\"floats\":" + values.length + "}");
  }

  private static ByteBuffer buffer(byte[] bytes, int offset, int length, boolean heap) {
    ByteBuffer whole = heap ? ByteBuffer.wrap(bytes) : ByteBuffer.allocateDirect(bytes.length);
    if (!heap) {
      whole.put(bytes);
    }
    whole.position(offset).limit(offset + length);
    return whole.slice();
  }

  private static void yuv(String[] a) throws IOException {
    VprPreprocessor p = preprocessor(a[1]);
    int w = Integer.parseInt(a[2]);
    int h = Integer.parseInt(a[3]);
    int rotation = Integer.parseInt(a[4]);
    byte[] y = Files.readAllBytes(Paths.get(a[5]));
    int yStride = Integer.parseInt(a[6]);
    byte[] chroma = Files.readAllBytes(Paths.get(a[7]));
    String layout = a[8];
    int uvStride = Integer.parseInt(a[9]);
    boolean heap = a.length == 12 && a[11].equals("heap");
    ByteBuffer u;
    ByteBuffer v;
    int pixelStride;
    if (layout.equals("planar")) {
      int half = chroma.length / 2;
      u = buffer(chroma, 0, half, heap);
      v = buffer(chroma, half, half, heap);
      pixelStride = 1;
    } else {
      // Android's semi-planar views: each starts at its first sample and ends at the last.
      int first = layout.equals("nv12") ? 0 : 1;
      u = buffer(chroma, first, chroma.length - 1, heap);
      v = buffer(chroma, 1 - first, chroma.length - 1, heap);
      pixelStride = 2;
    }
    float[] out = new float[p.size()];
    p.fromYuv420(buffer(y, 0, y.length, heap), yStride, u, v, uvStride, pixelStride, w, h,
        rotation, out);
    writeFloats(a[10], out);
  }

  private static void preprocessErrors(VprPreprocessor p) {
    int w = 64;
    int h = 48;
    float[] out = new float[p.size()];
    byte[] rgb = new byte[w * h * 3];
    ByteBuffer y = ByteBuffer.allocateDirect(w * h);
    ByteBuffer u = ByteBuffer.allocateDirect(w * h / 4);
    ByteBuffer v = ByteBuffer.allocateDirect(w * h / 4);
    int cw = w / 2;
    run("rgb_short", () -> p.fromRgb(new byte[w * h * 3 - 1], w, h, 0, out));
    run("rgb_null", () -> p.fromRgb(null, w, h, 0, out));
    run("rgb_bad_size", () -> p.fromRgb(rgb, 0, h, 0, out));
    run("rgb_stride_too_small", () -> p.fromRgb(rgb, w, h, w * 3 - 1, out));
    run("rgb_out_too_short", () -> p.fromRgb(rgb, w, h, 0, new float[p.size() - 1]));
    run("rgb_out_null", () -> p.fromRgb(rgb, w, h, 0, null));
    run("argb_short", () -> p.fromArgb(new int[w * h - 1], w, h, out));
    run("yuv_ok", () -> p.fromYuv420(y, w, u, v, cw, 1, w, h, 0, out));
    run("yuv_y_short", () -> p.fromYuv420(y, w + 1, u, v, cw, 1, w, h, 0, out));
    run("yuv_u_short", () -> p.fromYuv420(y, w, u, v, cw + 1, 1, w, h, 0, out));
    run("yuv_semi_planar_short", () -> p.fromYuv420(y, w, u, v, cw, 2, w, h, 0, out));
    run("yuv_pixel_stride_3", () -> p.fromYuv420(y, w, u, v, cw, 3, w, h, 0, out));
    run("yuv_rotation_45", () -> p.fromYuv420(y, w, u, v, cw, 1, w, h, 45, out));
    run("yuv_null_v", () -> p.fromYuv420(y, w, u, null, cw, 1, w, h, 0, out));
    run("yuv_negative_height", () -> p.fromYuv420(y, w, u, v, cw, 1, w, -h, 0, out));
    run("yuv_huge", () -> p.fromYuv420(y, w, u, v, cw, 1, 1 << 20, 1 << 20, 0, out));
    run("yuv_stride_below_width", () -> p.fromYuv420(y, w - 2, u, v, cw, 1, w, h, 0, out));
    run("yuv_out_wrong", () -> p.fromYuv420(y, w, u, v, cw, 1, w, h, 0, new float[3]));
  }

  private interface Action {
    void run() throws Exception;
  }

  private static void check(boolean ok) {
    if (!ok) {
      throw new AssertionError("check failed");
    }
  }

  // Prints the exception class the action threw, or null if it returned normally.
  private static void run(String name, Action action) {
    String thrown = null;
    String message = null;
    try {
      action.run();
    } catch (Exception | AssertionError e) {
      thrown = e.getClass().getName();
      message = e.getMessage();
    }
    System.out.println("{\"event\":\"case\",\"case\":" + quote(name)
        + ",\"exception\":" + quote(thrown) + ",\"message\":" + quote(message) + "}");
  }

  private static float[][] readQueries(String path, int dim) throws IOException {
    ByteBuffer buf = ByteBuffer.wrap(Files.readAllBytes(Paths.get(path)));
    buf.order(ByteOrder.LITTLE_ENDIAN);
    int rows = buf.remaining() / (4 * dim);
    float[][] out = new float[rows][dim];
    for (float[] row : out) {
      buf.asFloatBuffer().get(row);
      buf.position(buf.position() + 4 * dim);
    }
    return out;
  }

  private static String result(String event, int query, VprSearchResult r) {
    StringBuilder s = new StringBuilder();
    s.append("{\"event\":\"").append(event).append("\",\"query\":").append(query);
    s.append(",\"ids\":[");
    for (int i = 0; i < r.size(); i++) {
      s.append(i == 0 ? "" : ",").append(r.id(i));
    }
    s.append("],\"scores\":[");
    for (int i = 0; i < r.size(); i++) {
      s.append(i == 0 ? "" : ",").append(Float.toString(r.score(i)));
    }
    s.append("],\"names\":");
    String[] names = r.names();
    if (names == null) {
      s.append("null");
    } else {
      s.append('[');
      for (int i = 0; i < names.length; i++) {
        s.append(i == 0 ? "" : ",").append(quote(names[i]));
      }
      s.append(']');
    }
    s.append(",\"positions\":");
    double[] positions = r.positions();
    if (positions == null) {
      s.append("null");
    } else {
      s.append('[');
      for (int i = 0; i < positions.length; i++) {
        s.append(i == 0 ? "" : ",").append(Double.toString(positions[i]));
      }
      s.append(']');
    }
    return s.append('}').toString();
  }

  private static String quote(String v) {
    if (v == null) {
      return "null";
    }
    StringBuilder s = new StringBuilder("\"");
    for (int i = 0; i < v.length(); i++) {
      char c = v.charAt(i);
      if (c == '"' || c == '\\') {
        s.append('\\').append(c);
      } else if (c < 0x20) {
        s.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
      } else {
        s.append(c);
      }
    }
    return s.append('"').toString();
  }
}
