package org.vprembedded;

import java.nio.charset.StandardCharsets;

/**
 * A bundle's validated {@code manifest.json}, read by the one manifest validator (the C++ core's,
 * through JNI), so the app accepts and refuses exactly what Python and vpr-localize do. A refused
 * manifest is an {@link IllegalArgumentException} with the validator's message (what to fix).
 */
public final class VprManifest {
  static {
    System.loadLibrary("vpr_jni");
  }

  public final String modelName;
  public final int height;
  public final int width;
  /** Colour order of the model input: true for BGR, false for RGB. */
  public final boolean bgr;
  /** The pad-free export takes the image rotated by 180 degrees. */
  public final boolean rotate180;
  public final float[] mean;
  public final float[] std;
  public final int descriptorDim;
  public final String quantization;
  public final String pteFile;
  public final String pteSha256;
  public final long pteBytes;

  private VprManifest(byte[] text, double[] n) {
    String[] s = new String(text, StandardCharsets.UTF_8).split("\0", -1);
    modelName = s[0];
    quantization = s[1];
    pteFile = s[2];
    pteSha256 = s[3];
    height = (int) n[0];
    width = (int) n[1];
    bgr = n[2] != 0;
    rotate180 = n[3] != 0;
    mean = new float[] {(float) n[4], (float) n[5], (float) n[6]};
    std = new float[] {(float) n[7], (float) n[8], (float) n[9]};
    descriptorDim = (int) n[10];
    pteBytes = (long) n[11];
  }

  /** Validates a manifest document; {@code where} names it in messages. */
  public static VprManifest parse(String json, String where) {
    if (json == null || where == null) {
      throw new IllegalArgumentException("the manifest text and its name must not be null");
    }
    double[] numbers = new double[12];
    byte[] text = nativeParse(
        json.getBytes(StandardCharsets.UTF_8), where.getBytes(StandardCharsets.UTF_8), numbers);
    return new VprManifest(text, numbers);
  }

  /**
   * Reads and validates {@code bundleDir/manifest.json}; with {@code checkPte} also the program's
   * size and sha256.
   */
  public static VprManifest load(String bundleDir, boolean checkPte) {
    if (bundleDir == null) {
      throw new IllegalArgumentException("the bundle folder is null");
    }
    double[] numbers = new double[12];
    byte[] text = nativeLoad(bundleDir.getBytes(StandardCharsets.UTF_8), checkPte, numbers);
    return new VprManifest(text, numbers);
  }

  private static native byte[] nativeParse(byte[] json, byte[] where, double[] numbers);

  private static native byte[] nativeLoad(byte[] bundleDir, boolean checkPte, double[] numbers);
}
