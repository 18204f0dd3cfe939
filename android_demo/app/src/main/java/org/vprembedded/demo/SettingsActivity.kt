package org.vprembedded.demo

import android.os.Bundle
import android.widget.ArrayAdapter
import android.widget.Spinner
import android.widget.Toast
import androidx.appcompat.app.AppCompatActivity
import org.vprembedded.demo.databinding.ActivitySettingsBinding
import java.io.File
import java.util.concurrent.Executors

/** Picks the model bundle and the map, and the confidence and sequence settings. */
class SettingsActivity : AppCompatActivity() {
    private lateinit var binding: ActivitySettingsBinding
    private var bundles: List<File> = emptyList()
    private var maps: List<File> = emptyList()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivitySettingsBinding.inflate(layoutInflater)
        setContentView(binding.root)
        supportActionBar?.setDisplayHomeAsUpEnabled(true)
        val current = DemoSettings.load(this)
        binding.minScore.setText(current.minScore.toString())
        binding.minMargin.setText(current.minMargin.toString())
        binding.sequenceLength.setText(current.sequenceLength.toString())
        binding.threads.setText(current.threads.toString())
        binding.fps.setText(current.framesPerSecond.toString())
        binding.help.text = getString(R.string.push_help, DemoFiles.pushDir(this)?.path)
        binding.save.setOnClickListener { save() }
        binding.save.isEnabled = false
        // Listing copies packaged assets out of the APK: off the main thread.
        val io = Executors.newSingleThreadExecutor()
        io.execute {
            val foundBundles = DemoFiles.bundles(this)
            val foundMaps = DemoFiles.maps(this)
            runOnUiThread {
                bundles = foundBundles
                maps = foundMaps
                fill(binding.bundle, bundles, current.bundlePath)
                fill(binding.map, maps, current.mapPath)
                binding.save.isEnabled = true
            }
        }
        io.shutdown()
    }

    override fun onSupportNavigateUp(): Boolean {
        finish()
        return true
    }

    private fun fill(spinner: Spinner, files: List<File>, selected: String) {
        val labels = files.map { it.parentFile?.name + "/" + it.name }.ifEmpty { listOf(getString(R.string.none_found)) }
        spinner.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, labels)
        val index = files.indexOfFirst { it.absolutePath == selected }
        if (index >= 0) spinner.setSelection(index)
    }

    private fun save() {
        val d = DemoSettings()
        val settings = DemoSettings(
            bundlePath = bundles.getOrNull(binding.bundle.selectedItemPosition)?.absolutePath.orEmpty(),
            mapPath = maps.getOrNull(binding.map.selectedItemPosition)?.absolutePath.orEmpty(),
            minScore = binding.minScore.text.toString().toFloatOrNull() ?: d.minScore,
            minMargin = binding.minMargin.text.toString().toFloatOrNull()?.coerceAtLeast(0f) ?: d.minMargin,
            sequenceLength = binding.sequenceLength.text.toString().toIntOrNull()?.coerceIn(0, 100) ?: d.sequenceLength,
            threads = binding.threads.text.toString().toIntOrNull()?.coerceIn(0, 16) ?: d.threads,
            framesPerSecond = binding.fps.text.toString().toIntOrNull()?.coerceIn(1, 30) ?: d.framesPerSecond,
        )
        settings.save(this)
        Toast.makeText(this, R.string.saved, Toast.LENGTH_SHORT).show()
        finish()
    }
}
