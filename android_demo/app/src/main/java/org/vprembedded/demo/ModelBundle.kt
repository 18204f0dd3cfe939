package org.vprembedded.demo

import org.vprembedded.VprManifest
import java.io.File

/**
 * A model bundle folder (`model.pte` + `manifest.json`, written by `vpr-embedded export`).
 * The manifest is read by the one manifest validator, the C++ core's, through JNI
 * ([VprManifest]): this app accepts and refuses exactly the bundles Python and vpr-localize do,
 * and keeps no rules of its own. Its preprocessing fields go to [org.vprembedded.VprPreprocessor].
 */
class ModelBundle private constructor(val folder: File, val manifest: VprManifest) {
    val modelName: String get() = manifest.modelName
    val descriptorDim: Int get() = manifest.descriptorDim
    val pteSha256: String get() = manifest.pteSha256
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
