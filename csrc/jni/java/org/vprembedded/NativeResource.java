package org.vprembedded;

import java.lang.ref.PhantomReference;
import java.lang.ref.ReferenceQueue;
import java.util.Collections;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A native handle owned by a Java object, released exactly once: by {@link #release()} when the
 * owner is closed, or by a daemon thread after the owner became unreachable without being closed
 * (an app that forgets {@code close()} must not keep a map mapped forever).
 *
 * <p>{@code java.lang.ref.Cleaner} would do this, but it needs Android API 33 and the app's
 * minSdk is 24, so this is the same mechanism by hand: a {@link PhantomReference} per owner, kept
 * reachable in {@link #LIVE} until released, and one thread draining the {@link ReferenceQueue}.
 *
 * <p>Every native call on the handle runs inside {@code synchronized (resource)} (see {@link
 * #handle()}), and release takes the same lock, so a handle is never freed while a call uses it, even
 * when the JIT lets the owner become unreachable during that call.
 */
final class NativeResource extends PhantomReference<Object> {
  /** Frees a native handle (called once, with a non-zero handle). */
  interface Releaser {
    void release(long handle);
  }

  private static final ReferenceQueue<Object> QUEUE = new ReferenceQueue<>();
  private static final Set<NativeResource> LIVE =
      Collections.newSetFromMap(new ConcurrentHashMap<NativeResource, Boolean>());
  private static Thread reaper;

  private final Releaser releaser;
  private long handle;

  NativeResource(Object owner, long handle, Releaser releaser) {
    super(owner, QUEUE);
    this.handle = handle;
    this.releaser = releaser;
    LIVE.add(this);
    startReaper();
  }

  /** The handle, or 0 once released. Callers hold {@code synchronized (this)}. */
  long handle() {
    return handle;
  }

  /** Frees the handle now; later calls do nothing. */
  synchronized void release() {
    if (handle != 0) {
      long h = handle;
      handle = 0;
      LIVE.remove(this);
      releaser.release(h);
    }
  }

  /** Resources whose owners were neither closed nor collected yet (for tests). */
  static int liveCount() {
    return LIVE.size();
  }

  private static synchronized void startReaper() {
    if (reaper != null) {
      return;
    }
    reaper = new Thread(
        () -> {
          while (true) {
            try {
              ((NativeResource) QUEUE.remove()).release();
            } catch (InterruptedException e) {
              return;
            }
          }
        },
        "vpr-native-reaper");
    reaper.setDaemon(true);
    reaper.start();
  }
}
