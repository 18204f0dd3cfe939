package org.vprembedded.demo

import android.content.Context
import java.io.File

/**
 * Where bundles and maps come from:
 *  - pushed with adb to the app's external files dir
 *    (/sdcard/Android/data/org.vprembedded.demo/files/{bundles/NAME/, maps/NAME.vprmap}), or
 *  - packaged as assets (assets/bundles/NAME/..., assets/maps/NAME.vprmap), copied to internal
 *    storage on first use (ExecuTorch and the map reader need real files).
 */
object DemoFiles {
    private const val BUNDLES = "bundles"
    private const val MAPS = "maps"
    private const val MAP_SUFFIX = ".vprmap"

    fun pushDir(context: Context): File? = context.getExternalFilesDir(null)

    /** Folders holding a manifest.json, pushed or from the assets. Call off the main thread. */
    fun bundles(context: Context): List<File> =
        roots(context).flatMap { root ->
            File(root, BUNDLES).listFiles { f -> File(f, ModelBundle.MANIFEST).isFile }.orEmpty().toList()
        }.sortedBy { it.absolutePath }

    /** Map files, pushed or from the assets. Call off the main thread. */
    fun maps(context: Context): List<File> =
        roots(context).flatMap { root ->
            File(root, MAPS).listFiles { f -> f.isFile && f.name.endsWith(MAP_SUFFIX) }.orEmpty().toList()
        }.sortedBy { it.absolutePath }

    private fun roots(context: Context): List<File> =
        listOfNotNull(pushDir(context), copyAssets(context))

    /** Copies assets/bundles and assets/maps to internal storage. Call off the main thread. */
    private fun copyAssets(context: Context): File {
        val root = File(context.filesDir, "assets")
        for (top in listOf(BUNDLES, MAPS)) copyTree(context, top, File(root, top))
        return root
    }

    private fun copyTree(context: Context, assetPath: String, dest: File) {
        val children = context.assets.list(assetPath).orEmpty()
        if (children.isEmpty()) {
            if (assetPath.substringAfterLast('/') in listOf(BUNDLES, MAPS)) return // no such folder
            // Known only for uncompressed assets (.pte, .vprmap); small files are copied again.
            val size = runCatching { context.assets.openFd(assetPath).use { it.length } }.getOrNull()
            if (size != null && dest.isFile && dest.length() == size) return
            dest.parentFile?.mkdirs()
            val tmp = File(dest.path + ".tmp")
            context.assets.open(assetPath).use { input ->
                tmp.outputStream().use { output -> input.copyTo(output) }
            }
            check(tmp.renameTo(dest)) { "cannot write $dest" }
            return
        }
        for (child in children) copyTree(context, "$assetPath/$child", File(dest, child))
    }
}
