pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "vpr-embedded-demo"
include(":app")
// The JNI library the app depends on lives beside its C++ (usearch-style): csrc/jni.
include(":vpr-jni")
project(":vpr-jni").projectDir = file("../csrc/jni")
