plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.vprembedded.demo"
    compileSdk = 35
    defaultConfig {
        applicationId = "org.vprembedded.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            abiFilters += "arm64-v8a"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            // The library's consumer rules keep its JNI classes (csrc/jni/consumer-rules.pro).
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"))
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
    // The JNI library (matcher, manifest validator, preprocessing): csrc/jni, see settings.gradle.kts.
    implementation(project(":vpr-jni"))
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
