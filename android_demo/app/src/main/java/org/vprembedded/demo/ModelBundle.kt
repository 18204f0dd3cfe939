package org.vprembedded.demo

import org.json.JSONObject
import java.io.File
import java.security.MessageDigest

/** Order of the colour channels the model expects. */
enum class ColourOrder { RGB, BGR }

/**
 * A model bundle folder (`model.pte` + `manifest.json`, written by `vpr-embedded export`).
 * The manifest says how to preprocess a frame; nothing here guesses (see vpr_embedded/bundle.py).
 */
class ModelBundle private constructor(
    val folder: File,
    val modelName: String,
    val height: Int,
    val width: Int,
    val colourOrder: ColourOrder,
    val scale: Float,
    val mean: FloatArray,
    val std: FloatArray,
    /** The pad-free export takes the image rotated by 180 degrees. */
    val rotate180: Boolean,
    val descriptorDim: Int,
    val pte: File,
    val pteSha256: String,
    val resize: String,
) {
    /** Checks the .pte against the manifest's sha256 (reads the file once). */
    fun verifyPte() {
        val digest = MessageDigest.getInstance("SHA-256")
        pte.inputStream().use { input ->
            val buffer = ByteArray(1 shl 16)
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                digest.update(buffer, 0, n)
            }
        }
        val actual = digest.digest().joinToString("") { "%02x".format(it) }
        require(actual == pteSha256) {
            "$pte does not match its manifest (sha256 $actual, expected $pteSha256): re-export the bundle"
        }
    }

    companion object {
        const val FORMAT = "vpr-embedded-bundle"
        const val FORMAT_VERSION = 1
        const val MANIFEST = "manifest.json"

        /** Reads and validates `folder/manifest.json`; throws IllegalArgumentException with the fix. */
        fun load(folder: File): ModelBundle {
            val file = File(folder, MANIFEST)
            require(file.isFile) { "$folder is not a model bundle: it has no $MANIFEST" }
            val m = JSONObject(file.readText())
            require(m.optString("format") == FORMAT) { "$file is not a $FORMAT manifest" }
            require(m.optInt("format_version") == FORMAT_VERSION) {
                "$file: bundle format version ${m.opt("format_version")} is not supported " +
                    "(this app reads $FORMAT_VERSION); re-export the bundle"
            }
            val input = m.getJSONObject("input")
            require(input.optString("layout", "NCHW") == "NCHW" && input.optInt("channels", 3) == 3) {
                "$file: only 3-channel NCHW float32 inputs are supported"
            }
            val height = input.getInt("height")
            val width = input.getInt("width")
            require(height in 1..8192 && width in 1..8192) { "$file: input size ${height}x$width" }
            val colour = input.getString("colour_order")
            val order = ColourOrder.entries.firstOrNull { it.name == colour }
                ?: throw IllegalArgumentException("$file: colour_order $colour must be RGB or BGR")
            val mean = floats3(input, "mean", file)
            val std = floats3(input, "std", file)
            require(std.all { it > 0f }) { "$file: input.std must be positive" }
            val dim = m.getInt("descriptor_dim")
            require(dim > 0) { "$file: descriptor_dim must be positive" }
            val pte = m.getJSONObject("pte")
            val pteName = pte.getString("file")
            require('/' !in pteName && pteName !in listOf("", ".", "..")) {
                "$file: pte.file must be a plain file name"
            }
            val pteFile = File(folder, pteName)
            require(pteFile.isFile) { "bundle $folder lacks $pteName" }
            return ModelBundle(
                folder = folder,
                modelName = m.getString("model_name"),
                height = height,
                width = width,
                colourOrder = order,
                scale = input.optDouble("scale", 1.0 / 255.0).toFloat(),
                mean = mean,
                std = std,
                rotate180 = input.optBoolean("rotate_180", false),
                descriptorDim = dim,
                pte = pteFile,
                pteSha256 = pte.getString("sha256").lowercase(),
                resize = input.optString("resize"),
            )
        }

        private fun floats3(input: JSONObject, key: String, file: File): FloatArray {
            val a = input.getJSONArray(key)
            require(a.length() == 3) { "$file: input.$key must have 3 numbers" }
            return FloatArray(3) { a.getDouble(it).toFloat() }
        }
    }
}
