package org.vprembedded.demo

import android.graphics.Bitmap
import android.graphics.Matrix

/**
 * Turns a camera frame into the model's input as the bundle's manifest says: the whole frame
 * resized to width x height, channels in the manifest's colour order, (x * scale - mean) / std,
 * NCHW float32.
 *
 * The manifest's resize is PIL's antialiased bilinear; Android's bilinear filter does not
 * antialias, so large reductions are done by successive halvings first (a box-like filter).
 * The result is close to, not bit-identical with, the Python preprocessing.
 */
class Preprocessor(private val bundle: ModelBundle) {
    private val pixels = IntArray(bundle.width * bundle.height)

    /** Input tensor shape: batch 1, 3 channels, height, width. */
    val shape = longArrayOf(1, 3, bundle.height.toLong(), bundle.width.toLong())

    /** Returns a new NCHW float array for [frame], first rotated by [rotationDegrees]. */
    fun toInput(frame: Bitmap, rotationDegrees: Int): FloatArray {
        var bitmap = frame
        if (rotationDegrees % 360 != 0) {
            val m = Matrix().apply { postRotate(rotationDegrees.toFloat()) }
            bitmap = Bitmap.createBitmap(frame, 0, 0, frame.width, frame.height, m, false)
        }
        while (bitmap.width >= 2 * bundle.width && bitmap.height >= 2 * bundle.height) {
            val half = Bitmap.createScaledBitmap(bitmap, bitmap.width / 2, bitmap.height / 2, true)
            if (bitmap !== frame) bitmap.recycle()
            bitmap = half
        }
        val sized = Bitmap.createScaledBitmap(bitmap, bundle.width, bundle.height, true)
        if (bitmap !== frame && bitmap !== sized) bitmap.recycle()
        sized.getPixels(pixels, 0, bundle.width, 0, 0, bundle.width, bundle.height)
        if (sized !== frame) sized.recycle()
        return toChw(pixels)
    }

    private fun toChw(argb: IntArray): FloatArray {
        val plane = argb.size
        val out = FloatArray(3 * plane)
        // Output channel c takes this shift of the ARGB int (R 16, G 8, B 0).
        val shifts = when (bundle.colourOrder) {
            ColourOrder.RGB -> intArrayOf(16, 8, 0)
            ColourOrder.BGR -> intArrayOf(0, 8, 16)
        }
        for (c in 0 until 3) {
            val shift = shifts[c]
            val a = bundle.scale / bundle.std[c]
            val b = -bundle.mean[c] / bundle.std[c]
            val base = c * plane
            for (i in 0 until plane) {
                // A 180-degree rotation reverses the row-major pixel order.
                val j = if (bundle.rotate180) plane - 1 - i else i
                out[base + j] = ((argb[i] ushr shift) and 0xff) * a + b
            }
        }
        return out
    }
}
