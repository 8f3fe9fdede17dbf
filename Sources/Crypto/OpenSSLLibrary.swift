internal import COpenSSL

/// OpenSSL, initialised once per process without its exit-time cleanup.
///
/// By default the first OpenSSL call registers `OPENSSL_cleanup` with
/// `atexit`: at exit it frees the library's global state (its providers,
/// the primary DRBG, the thread-local keys) while threads that used OpenSSL
/// may still be ending and freeing their own thread-local state (their
/// DRBGs, their error queue) through those keys. A command's work runs on a
/// thread of its own that hands its result back just before it ends (and a
/// copy's hash thread, the re-read's helper and the copy threads end on their
/// own), so every `uploader` process raced its exit against such a thread:
/// under load the two freed the same memory and the heap broke
/// (`malloc_consolidate(): invalid chunk size`). OpenSSL's own advice is
/// that cleanup must not run while another thread may use it; the kernel
/// takes the memory back at exit anyway. This must run before any other
/// OpenSSL call of the process (libcurl's included), or that call has
/// registered the cleanup already: every entry into OpenSSL here goes through it.
public enum OpenSSLLibrary {
    /// Whether OpenSSL initialised. Reading it is the initialisation.
    public static let isReady: Bool = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_ATEXIT), nil) == 1

    /// Initialises OpenSSL (once) without its `atexit` cleanup.
    @inline(__always)
    public static func prepare() {
        guard isReady else { fatalError("OPENSSL_init_crypto failed: OpenSSL is unusable") }
    }
}
