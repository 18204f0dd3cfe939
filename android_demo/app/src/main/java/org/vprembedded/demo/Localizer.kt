package org.vprembedded.demo

import android.os.SystemClock
import androidx.camera.core.ImageProxy
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.vprembedded.VprMap
import org.vprembedded.VprPreprocessor
import org.vprembedded.VprSearchResult
import org.vprembedded.VprSequenceMatcher

/** One localised frame: the best places, single frame and over the sequence, and the costs. */
data class Localization(
    val single: VprSearchResult,
    val sequence: VprSearchResult?,
    val state: MatchState,
    val margin: Float,
    val preprocessMs: Double,
    val extractionMs: Double,
    val matchingMs: Double,
)

/**
 * Camera frame -> descriptor (ExecuTorch, XNNPACK-delegated .pte) -> places (our JNI matcher).
 * Not thread-safe: use it from one thread (the camera analysis executor).
 */
class Localizer(
    val bundle: ModelBundle,
    mapPath: String,
    private val settings: DemoSettings,
) : AutoCloseable {
    val map: VprMap = VprMap.open(mapPath)
    private val module: Module
    // The C++ core's preprocessing through JNI: the input Python and vpr-localize compute for
    // the same pixels (the camera's YUV planes are converted with libyuv in C++).
    private val preprocessor = VprPreprocessor(bundle.manifest)
    private val input = FloatArray(preprocessor.size())
    private val sequence: VprSequenceMatcher?
    private val policy = ConfidencePolicy(settings.minScore, settings.minMargin)

    init {
        try {
            // As Python's Map.open(path, bundle sha256): a map is never searched with descriptors
            // of another model (build-map records the bundle's pte.sha256 in the map).
            require(map.modelSha256() == bundle.pteSha256) {
                "map ${map.path()} was built with model '${map.modelName()}' (sha256 " +
                    "${map.modelSha256()}), not with bundle '${bundle.modelName}' (sha256 " +
                    "${bundle.pteSha256}): rebuild the map with `vpr-embedded build-map --model " +
                    "BUNDLE`, or pick the bundle it was built with"
            }
            require(map.inputDim() == bundle.descriptorDim) {
                "map ${map.path()} expects descriptors of dimension ${map.inputDim()}, but " +
                    "${bundle.modelName} gives ${bundle.descriptorDim}: rebuild the map"
            }
            bundle.verifyPte()
            module = Module.load(bundle.pte.absolutePath)
            sequence = if (settings.sequenceLength > 1) {
                VprSequenceMatcher(
                    map,
                    VprSequenceMatcher.Config().apply {
                        length = settings.sequenceLength
                        k = TOP_K
                        threads = settings.threads
                    },
                )
            } else {
                null
            }
        } catch (e: Throwable) {
            map.close()
            throw e
        }
    }

    /** Localises one camera frame (YUV_420_888), turned upright by its rotation degrees. */
    fun localize(image: ImageProxy): Localization {
        val t0 = SystemClock.elapsedRealtimeNanos()
        val (y, u, v) = image.planes
        preprocessor.fromYuv420(
            y.buffer, y.rowStride, u.buffer, v.buffer, u.rowStride, u.pixelStride,
            image.width, image.height, image.imageInfo.rotationDegrees, input,
        )
        val t1 = SystemClock.elapsedRealtimeNanos()
        val outputs = module.forward(EValue.from(Tensor.fromBlob(input, preprocessor.shape())))
        val descriptor = outputs[0].toTensor().dataAsFloatArray
        val t2 = SystemClock.elapsedRealtimeNanos()
        val single = map.search(descriptor, TOP_K, settings.threads)
        val seq = sequence?.push(descriptor)
        val t3 = SystemClock.elapsedRealtimeNanos()
        return Localization(
            single = single,
            sequence = seq,
            state = policy.classify(single),
            margin = policy.margin(single),
            preprocessMs = (t1 - t0) / 1e6,
            extractionMs = (t2 - t1) / 1e6,
            matchingMs = (t3 - t2) / 1e6,
        )
    }

    override fun close() {
        sequence?.close()
        module.destroy()
        map.close()
    }

    companion object {
        const val TOP_K = 5
    }
}
