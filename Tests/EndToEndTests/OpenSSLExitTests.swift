import Foundation
import Testing
import TestSupport

/// An `uploader` process never tears OpenSSL down at exit. OpenSSL's default
/// `atexit` cleanup frees its global and thread-local state while threads that
/// used it may still be ending (the command's own thread hands its result back
/// just before it ends; copy, hash and re-read threads end on their own): in
/// one full test run an ingest died in that race with
/// `malloc_consolidate(): invalid chunk size`. The race itself is too narrow
/// to hit on demand, so the test asks OpenSSL after every exit handler has run
/// (a preloaded probe registered before OpenSSL's own handler) whether it
/// was cleaned up: it must not have been.
@Suite(.tags(.subprocess)) struct OpenSSLExitTests {
    @Test func anIngestLeavesOpenSSLStandingAtExitWhileItsThreadsEnd() throws {
        let site = try TestSite.make("openssl-exit")
        // More than one sealed chunk pair and more than one part: copy, hash and re-read threads all use OpenSSL.
        try site.run(["simulate-camera", site.camera, "--files", "3", "--size", "6MiB"])
        try site.run(["device", "add", "BWC-1", "--user", "officer-1"])
        let probe = try Self.buildExitProbe(in: site.folder.sub("probe"))
        let result = try site.cli(["ingest", site.camera, "--serial", "BWC-1"], environment: ["LD_PRELOAD": probe])
        #expect(!result.stderr.contains("OpenSSL was cleaned up at exit"), "\(result.stderr)")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("3 copied"), "\(result.stdout)")
    }

    /// A shared library whose constructor registers an exit handler before
    /// anything else can; handlers run in reverse order, so it runs after
    /// OpenSSL's and asks `OPENSSL_init_crypto`, which answers 0 once
    /// `OPENSSL_cleanup` has run (OPENSSL_INIT_BASE_ONLY: no error raised).
    static func buildExitProbe(in folder: String) throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let source = folder + "/exit-probe.c", library = folder + "/exit-probe.so"
        try """
            #include <dlfcn.h>
            #include <stdint.h>
            #include <stdlib.h>
            #include <unistd.h>
            static void probe(void) {
                int (*init)(uint64_t, const void *) = (int (*)(uint64_t, const void *))dlsym(RTLD_DEFAULT, "OPENSSL_init_crypto");
                if (init != NULL && init(0x00040000L, NULL) == 0) {
                    static const char message[] = "probe: OpenSSL was cleaned up at exit\\n";
                    write(2, message, sizeof message - 1);
                    _exit(86);
                }
            }
            __attribute__((constructor)) static void start(void) { atexit(probe); }

            """.write(toFile: source, atomically: true, encoding: .utf8)
        try runTool(try compiler(), ["-shared", "-fPIC", "-o", library, source, "-ldl"])
        return library
    }

    /// A C compiler: the toolchain's clang (beside `swift`, on PATH wherever the tests build) or the system's cc.
    static func compiler() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        for name in ["clang", "cc", "gcc"] {
            for folder in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
                return "\(folder)/\(name)"
            }
        }
        throw TestFailure.message("no C compiler (clang, cc or gcc) on PATH to build the exit probe")
    }
}
