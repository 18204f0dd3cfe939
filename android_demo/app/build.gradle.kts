plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.vprembedded.demo"
    compileSdk = 35
    // r27 or newer: 16 KB page support (ANDROID_SUPPORT_FLEXIBLE_PAGE_SIZES below).
    ndkVersion = "27.2.12479018"

    defaultConfig {
        applicationId = "org.vprembedded.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            abiFilters += "arm64-v8a"
        }
        externalNativeBuild {
            cmake {
                // Only the JNI matcher (vpr_jni -> vpr_core); ExecuTorch comes as an AAR.
                arguments += listOf(
                    "-DVPR_BUILD_JNI=ON",
                    // nlohmann/json headers for the manifest reader (docs/android_ndk.md).
                    "-DVPR_NLOHMANN_INCLUDE_DIR=" +
                        (System.getenv("VPR_NLOHMANN_INCLUDE_DIR") ?: "/usr/include"),
                    "-DANDROID_SUPPORT_FLEXIBLE_PAGE_SIZES=ON",
                    "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-z,max-page-size=16384",
                )
                targets += "vpr_jni"
            }
        }
    }

    externalNativeBuild {
        cmake {
            // The repository's root CMakeLists.txt (builds csrc/, here with VPR_BUILD_JNI=ON).
            path = file("../../CMakeLists.txt")
            version = "3.22.1"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }

    buildFeatures {
        viewBinding = true
    }

    androidResources {
        // Stored uncompressed, so they copy out of the APK quickly.
        noCompress += listOf("pte", "vprmap")
    }

    packaging {
        jniLibs {
            // Native libraries stay uncompressed and page-aligned in the APK (16 KB pages).
            useLegacyPackaging = false
        }
    }
}

dependencies {
    val executorchVersion: String by project
    val cameraxVersion = "1.4.1"
    implementation("org.pytorch:executorch-android:$executorchVersion")
    implementation("androidx.core:core-ktx:1.15.0")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
    implementation("androidx.camera:camera-core:$cameraxVersion")
    implementation("androidx.camera:camera-camera2:$cameraxVersion")
    implementation("androidx.camera:camera-lifecycle:$cameraxVersion")
    implementation("androidx.camera:camera-view:$cameraxVersion")
    testImplementation("junit:junit:4.13.2")
}
