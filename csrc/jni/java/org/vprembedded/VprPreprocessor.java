package org.vprembedded;

import java.nio.ByteBuffer;

/**
 * Turns a frame into a bundle's model input, {@code (1, 3, height, width)} float32, by the C++
 * core's preprocessing: the code {@code vpr-localize} and the Python localizer run, which equals
 * Python's {@code vpr_embedded.data.images.to_tensor} (Pillow's antialiased bilinear resize of
 * the whole frame, then {@code (x / 255 - mean) / std} in the manifest's colour order). The same
 * pixels therefore give the same descriptor on a phone as on the host.
 *
 * <p>Camera frames ({@code YUV_420_888}, as {@code android.media.Image} and CameraX's {@code
 * ImageProxy} give them) are turned upright and converted to RGB in C++ with libyuv, BT.601
 * limited range (what {@code vpr-localize --pixels yuv420p} does).
 *
 * <p>Holds no native memory (nothing to close) and is safe to share between threads. Bad input
 * (sizes, strides, array lengths) is an {@link IllegalArgumentException} saying what is wrong.
 */
public final class VprPreprocessor {
  static {
    System.loadLibrary("vpr_jni");
  }

  /** The model input's width and height (the manifest's {@code input}). */
  public final int width;

  public final int height;

  private final double[] spec;

  public VprPreprocessor(VprManifest manifest) {
    if (manifest == null) {
      throw new IllegalArgumentException("the manifest is null");
    }
    width = manifest.width;
    height = manifest.height;
    spec = new double[] {
      manifest.height, manifest.width, manifest.bgr ? 1 : 0, manifest.rotate180 ? 1 : 0,
      manifest.mean[0], manifest.mean[1], manifest.mean[2],
      manifest.std[0], manifest.std[1], manifest.std[2],
    };
  }

  /** The input tensor's shape: {@code {1, 3, height, width}}. */
  public long[] shape() {
    return new long[] {1, 3, height, width};
  }

  /** Floats in one input tensor: {@code 3 * height * width}. */
  public int size() {
    return 3 * height * width;
  }

  /**
   * Packed RGB8 pixels ({@code rowStride} bytes per row; 0: {@code width * 3}) into {@code out}
   * ({@link #size()} floats).
   */
  public void fromRgb(byte[] rgb, int imageWidth, int imageHeight, int rowStride, float[] out) {
    nativeRgb(spec, rgb, imageWidth, imageHeight, rowStride, out);
  }

  /** {@link #fromRgb(byte[], int, int, int, float[])} into a new array. */
  public float[] fromRgb(byte[] rgb, int imageWidth, int imageHeight) {
    float[] out = new float[size()];
    fromRgb(rgb, imageWidth, imageHeight, 0, out);
    return out;
  }

  /**
   * ARGB_8888 pixels, one {@code 0xAARRGGBB} int per pixel, row after row (what {@code
   * Bitmap.getPixels(pixels, 0, width, 0, 0, width, height)} fills), into {@code out}.
   */
  public void fromArgb(int[] argb, int imageWidth, int imageHeight, float[] out) {
    nativeArgb(spec, argb, imageWidth, imageHeight, out);
  }

  /**
   * A {@code YUV_420_888} frame into {@code out}: its three planes as {@code Image.getPlanes()}
   * gives them (buffer, row stride; the chroma planes share a row and a pixel stride: 1 planar,
   * 2 semi-planar), the frame's size, and the clockwise rotation that makes it upright ({@code
   * ImageInfo.getRotationDegrees()}: 0, 90, 180 or 270). Each buffer is read from its position
   * for its remaining bytes and is not modified; a buffer that is not direct is copied first.
   */
  public void fromYuv420(
      ByteBuffer y,
      int yRowStride,
      ByteBuffer u,
      ByteBuffer v,
      int uvRowStride,
      int uvPixelStride,
      int frameWidth,
      int frameHeight,
      int rotationDegrees,
      float[] out) {
    ByteBuffer dy = direct(y);
    ByteBuffer du = direct(u);
    ByteBuffer dv = direct(v);
    nativeYuv420(
        spec,
        dy, position(dy), remaining(dy), yRowStride,
        du, position(du), remaining(du),
        dv, position(dv), remaining(dv),
        uvRowStride, uvPixelStride, frameWidth, frameHeight, rotationDegrees, out);
  }

  private static ByteBuffer direct(ByteBuffer b) {
    if (b == null || b.isDirect()) {
      return b; // null: the native side names the missing plane
    }
    ByteBuffer copy = ByteBuffer.allocateDirect(b.remaining());
    copy.put(b.duplicate());
    copy.flip();
    return copy;
  }

  private static int position(ByteBuffer b) {
    return b == null ? 0 : b.position();
  }

  private static int remaining(ByteBuffer b) {
    return b == null ? 0 : b.remaining();
  }

  private static native void nativeRgb(
      double[] spec, byte[] rgb, int width, int height, int rowStride, float[] out);

  private static native void nativeArgb(
      double[] spec, int[] argb, int width, int height, float[] out);

  private static native void nativeYuv420(
      double[] spec,
      ByteBuffer y, int yPosition, int yRemaining, int yRowStride,
      ByteBuffer u, int uPosition, int uRemaining,
      ByteBuffer v, int vPosition, int vRemaining,
      int uvRowStride, int uvPixelStride, int width, int height, int rotationDegrees,
      float[] out);
}
