// Versions of the build plugins; the app module is in app/build.gradle.kts, the JNI
// library it depends on in ../csrc/jni/build.gradle.kts.
plugins {
    id("com.android.application") version "8.7.3" apply false
    id("com.android.library") version "8.7.3" apply false
    id("org.jetbrains.kotlin.android") version "2.0.21" apply false
}
