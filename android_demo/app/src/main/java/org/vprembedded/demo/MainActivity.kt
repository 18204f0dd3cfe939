package org.vprembedded.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.graphics.Color
import android.os.Bundle
import android.os.SystemClock
import android.util.Log
import android.view.Menu
import android.view.MenuItem
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.core.content.ContextCompat
import org.vprembedded.demo.databinding.ActivityMainBinding
import java.io.File
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/** Camera preview; each analysed frame is localised and the best place shown with its costs. */
class MainActivity : AppCompatActivity() {
    private lateinit var binding: ActivityMainBinding

    /** Runs model loading and every frame's localisation, one at a time. */
    private lateinit var worker: ExecutorService

    // Touched only on the worker thread.
    private var localizer: Localizer? = null
    private var lastFrameMs = 0L
    private var frameIntervalMs = 200L

    private val requestCamera =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera() else showStatus(getString(R.string.camera_denied))
        }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityMainBinding.inflate(layoutInflater)
        setContentView(binding.root)
        worker = Executors.newSingleThreadExecutor()
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) ==
            PackageManager.PERMISSION_GRANTED
        ) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }
    }

    override fun onResume() {
        super.onResume()
        loadLocalizer(DemoSettings.load(this)) // the settings may have changed
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute {
            localizer?.close()
            localizer = null
        }
        worker.shutdown()
    }

    override fun onCreateOptionsMenu(menu: Menu): Boolean {
        menuInflater.inflate(R.menu.main, menu)
        return true
    }

    override fun onOptionsItemSelected(item: MenuItem): Boolean =
        if (item.itemId == R.id.action_settings) {
            startActivity(Intent(this, SettingsActivity::class.java))
            true
        } else {
            super.onOptionsItemSelected(item)
        }

    private fun loadLocalizer(settings: DemoSettings) {
        showStatus(getString(R.string.loading))
        worker.execute {
            localizer?.close()
            localizer = null
            frameIntervalMs = 1000L / settings.framesPerSecond.coerceIn(1, 30)
            if (settings.bundlePath.isEmpty() || settings.mapPath.isEmpty()) {
                showStatus(getString(R.string.choose_files, DemoFiles.pushDir(this)?.path))
                return@execute
            }
            try {
                val loaded = Localizer(ModelBundle.load(File(settings.bundlePath)), settings.mapPath, settings)
                localizer = loaded
                val map = loaded.map
                showStatus(
                    getString(R.string.loaded, loaded.bundle.modelName, map.count(), map.storage(), map.nbytes() / 1024),
                )
            } catch (e: Exception) { // a bad bundle or map: say why, keep the camera running
                Log.e(TAG, "cannot load the model or map", e)
                showStatus(getString(R.string.load_failed, e.message ?: e.javaClass.simpleName))
            }
        }
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val preview = Preview.Builder().build().also {
                it.setSurfaceProvider(binding.preview.surfaceProvider)
            }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                // The camera's own YUV_420_888 planes: VprPreprocessor converts them in C++.
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_YUV_420_888)
                .build()
            analysis.setAnalyzer(worker, ::analyze)
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    /** Runs on the worker thread; frames closer than the frame interval are dropped. */
    private fun analyze(image: ImageProxy) {
        image.use {
            val loaded = localizer ?: return
            val now = SystemClock.elapsedRealtime()
            if (now - lastFrameMs < frameIntervalMs) return
            lastFrameMs = now
            try {
                val result = loaded.localize(it)
                runOnUiThread { show(result) }
            } catch (e: RuntimeException) { // a bad frame: say why, go on with the next one
                Log.e(TAG, "localisation failed", e)
                showStatus(getString(R.string.frame_failed, e.message ?: e.javaClass.simpleName))
            }
        }
    }

    private fun show(r: Localization) {
        val best = r.single
        if (best.size() == 0) return
        val name = best.name(0) ?: "#${best.id(0)}"
        binding.place.text = name
        val positions = best.positions()
        binding.score.text = String.format(
            Locale.ROOT,
            "score %.3f   margin %.3f%s",
            best.score(0),
            r.margin,
            if (positions != null) String.format(Locale.ROOT, "   at (%.5f, %.5f)", positions[0], positions[1]) else "",
        )
        val matched = r.state == MatchState.MATCHED
        binding.state.text = getString(if (matched) R.string.state_matched else R.string.state_uncertain)
        binding.state.setTextColor(if (matched) Color.rgb(0x2e, 0x7d, 0x32) else Color.rgb(0xef, 0x6c, 0x00))
        binding.sequence.text = r.sequence?.let { s ->
            if (s.size() == 0) "" else getString(R.string.sequence_best, s.name(0) ?: "#${s.id(0)}", s.score(0))
        }.orEmpty()
        binding.latency.text = String.format(
            Locale.ROOT,
            "preprocess %.1f ms   extraction %.1f ms   matching %.2f ms",
            r.preprocessMs,
            r.extractionMs,
            r.matchingMs,
        )
    }

    private fun showStatus(text: String) = runOnUiThread { binding.status.text = text }

    private companion object {
        const val TAG = "VprDemo"
    }
}
