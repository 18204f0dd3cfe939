package org.vprembedded.demo

import org.vprembedded.VprManifest
import java.io.File

/** Order of the colour channels the model expects. */
enum class ColourOrder { RGB, BGR }

/**
 * A model bundle folder (`model.pte` + `manifest.json`, written by `vpr-embedded export`).
 * The manifest is read by the one manifest validator, the C++ core's, through JNI
 * ([VprManifest]): this app accepts and refuses exactly the bundles Python and vpr-localize do,
 * and keeps no rules of its own.
 */
class ModelBundle private constructor(val folder: File, private val manifest: VprManifest) {
    val modelName: String get() = manifest.modelName
    val height: Int get() = manifest.height
    val width: Int get() = manifest.width
    val colourOrder: ColourOrder get() = if (manifest.bgr) ColourOrder.BGR else ColourOrder.RGB
    /** Pixel values are divided by 255 before mean and std, as every runtime does. */
    val scale: Float get() = 1.0f / 255.0f
    val mean: FloatArray get() = manifest.mean
    val std: FloatArray get() = manifest.std
    /** The pad-free export takes the image rotated by 180 degrees. */
    val rotate180: Boolean get() = manifest.rotate180
    val descriptorDim: Int get() = manifest.descriptorDim
    val pte: File get() = File(folder, manifest.pteFile)

    /** Checks the .pte's size and sha256 against the manifest (reads the file once). */
    fun verifyPte() {
        VprManifest.load(folder.path, true)
    }

    companion object {
        const val MANIFEST = "manifest.json"

        /** Reads and validates `folder/manifest.json`; throws IllegalArgumentException with the fix. */
        fun load(folder: File): ModelBundle = ModelBundle(folder, VprManifest.load(folder.path, false))
    }
}
