// org.vprembedded: the Java API of the JNI library (java/) and its native half (this folder's
// CMakeLists.txt, built through the repository's root CMakeLists.txt), as an Android library
// that an app depends on with `implementation(project(":vpr-jni"))` (android_demo does). The
// same Java sources are compiled and tested on a host JVM by scripts/test_jni.sh.
plugins {
    id("com.android.library")
}

android {
    namespace = "org.vprembedded"
    compileSdk = 35
    // r27 or newer: 16 KB page support (ANDROID_SUPPORT_FLEXIBLE_PAGE_SIZES below).
    ndkVersion = "27.2.12479018"

    defaultConfig {
        minSdk = 24
        ndk {
            abiFilters += "arm64-v8a"
        }
        externalNativeBuild {
            cmake {
                arguments += listOf(
                    "-DVPR_BUILD_JNI=ON",
                    // nlohmann/json headers for the manifest reader (docs/android_ndk.md).
                    "-DVPR_NLOHMANN_INCLUDE_DIR=" +
                        (System.getenv("VPR_NLOHMANN_INCLUDE_DIR") ?: "/usr/include"),
                    // A libyuv checkout, built with the NDK (docs/android_ndk.md pins its commit).
                    "-DVPR_LIBYUV_SOURCE_DIR=" + (System.getenv("VPR_LIBYUV_SOURCE_DIR") ?: ""),
                    "-DANDROID_SUPPORT_FLEXIBLE_PAGE_SIZES=ON",
                    "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-z,max-page-size=16384",
                )
                targets += "vpr_jni"
            }
        }
        // Keeps the JNI entry points' classes in apps that minify.
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            java.srcDirs("java")
            manifest.srcFile("AndroidManifest.xml")
        }
    }

    externalNativeBuild {
        cmake {
            path = file("../../CMakeLists.txt")
            version = "3.22.1"
        }
    }

    compileOptions {
        // The sources stay Java 8 (the host test compiles them with --release 8).
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }
}
