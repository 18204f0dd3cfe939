package org.vprembedded.demo

import android.content.Context
import android.content.SharedPreferences
import androidx.core.content.edit

/** What the settings screen picks; stored in SharedPreferences. */
data class DemoSettings(
    /** Model bundle folder (absolute path), or "" if none is chosen. */
    val bundlePath: String = "",
    /** Map file (absolute path), or "" if none is chosen. */
    val mapPath: String = "",
    /** Best score needed for "matched" (single frame). */
    val minScore: Float = 0.5f,
    /** Needed lead of the best place over the second best. */
    val minMargin: Float = 0.02f,
    /** Frames per sequence; 0 or 1 turns sequence matching off. */
    val sequenceLength: Int = 10,
    /** Matcher threads (0: all cores). */
    val threads: Int = 1,
    /** Frames analysed per second. */
    val framesPerSecond: Int = 5,
) {
    fun save(context: Context) {
        prefs(context).edit {
            putString(BUNDLE, bundlePath)
            putString(MAP, mapPath)
            putFloat(MIN_SCORE, minScore)
            putFloat(MIN_MARGIN, minMargin)
            putInt(SEQUENCE_LENGTH, sequenceLength)
            putInt(THREADS, threads)
            putInt(FPS, framesPerSecond)
        }
    }

    companion object {
        private const val BUNDLE = "bundle_path"
        private const val MAP = "map_path"
        private const val MIN_SCORE = "min_score"
        private const val MIN_MARGIN = "min_margin"
        private const val SEQUENCE_LENGTH = "sequence_length"
        private const val THREADS = "threads"
        private const val FPS = "frames_per_second"

        private fun prefs(context: Context): SharedPreferences =
            context.getSharedPreferences("vpr_demo", Context.MODE_PRIVATE)

        fun load(context: Context): DemoSettings {
            val p = prefs(context)
            val d = DemoSettings()
            return DemoSettings(
                bundlePath = p.getString(BUNDLE, d.bundlePath).orEmpty(),
                mapPath = p.getString(MAP, d.mapPath).orEmpty(),
                minScore = p.getFloat(MIN_SCORE, d.minScore),
                minMargin = p.getFloat(MIN_MARGIN, d.minMargin),
                sequenceLength = p.getInt(SEQUENCE_LENGTH, d.sequenceLength),
                threads = p.getInt(THREADS, d.threads),
                framesPerSecond = p.getInt(FPS, d.framesPerSecond),
            )
        }
    }
}
