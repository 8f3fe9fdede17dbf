@_exported import TestBasics
import Foundation
import Platform
import Ingest
import Spool
import SystemPackage
import Transport
import UploaderCore

public enum TestFailure: Error, CustomStringConvertible {
    case missingStore
    case message(String)

    public var description: String {
        switch self {
        case .missingStore:
            "UPLOADER_TEST_S3_ENDPOINT is not set: run the tests with scripts/test, which starts SeaweedFS on loopback"
        case .message(let text): text
        }
    }
}

/// The built `uploader` executable, run as an admin or systemd would.
public struct UploaderProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var killedBySignal: Int32?
    }

    public static var executable: String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("uploader").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.appendingPathComponent(".build/debug/uploader").path
    }

    /// Runs `uploader ARGS` and waits. `environment` adds to the inherited one;
    /// `wrapper` goes before the executable (`runExecutable: false` runs the wrapper alone,
    /// for a script that calls the executable itself).
    @discardableResult
    public static func run(_ arguments: [String], config: String? = nil, environment: [String: String] = [:],
                           wrapper: [String] = [], runExecutable: Bool = true) throws -> Result {
        try start(arguments, config: config, environment: environment, wrapper: wrapper, runExecutable: runExecutable).finish()
    }

    /// Starts `uploader ARGS` without waiting; `finish()` waits for it.
    public static func start(_ arguments: [String], config: String?, environment: [String: String] = [:],
                             wrapper: [String] = [], runExecutable: Bool = true) throws -> Running {
        let out = TemporaryDirectory("uploader-proc")
        var env = ProcessInfo.processInfo.environment
        env["UPLOADER_CONFIG"] = config
        // Invariant 7 in every command a test runs: a blocking call inside a Swift task aborts the process.
        env["UPLOADER_CHECK_BLOCKING"] = "1"
        // $UMOCKDEV_DIR is process-global: a child would inherit whichever testbed
        // another suite has live at that moment, and leave its udev sockets in that
        // folder (umockdev then cannot remove it and aborts the test run). A child
        // gets its own empty emulated system unless the caller hands it a testbed.
        env["UMOCKDEV_DIR"] = nil
        if env["LD_PRELOAD"]?.contains("umockdev") == true, environment["UMOCKDEV_DIR"] == nil {
            try FileManager.default.createDirectory(atPath: out.sub("udev/sys"), withIntermediateDirectories: true)
            env["UMOCKDEV_DIR"] = out.sub("udev")
        }
        for (key, value) in environment { env[key] = value }
        let command = wrapper + (runExecutable ? [executable] + arguments : [])
        let pid = try Syscall.startChild(command, environment: env, stdout: out.sub("stdout"), stderr: out.sub("stderr"))
        return Running(pid: pid, output: out)
    }

    public final class Running: @unchecked Sendable {
        public let pid: pid_t
        let output: TemporaryDirectory

        init(pid: pid_t, output: TemporaryDirectory) {
            self.pid = pid
            self.output = output
        }

        public func signal(_ number: Int32) { kill(pid, number) }

        public func finish() -> Result {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
            return Result(status: signaled ? -1 : (status >> 8) & 0xff,
                          stdout: (try? String(contentsOfFile: output.sub("stdout"), encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOfFile: output.sub("stderr"), encoding: .utf8)) ?? "",
                          killedBySignal: signaled ? status & 0x7f : nil)
        }
    }

    /// Decodes the JSON a command printed with `--json`.
    public static func json(_ result: Result) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestFailure.message("not a JSON object: \(result.stdout) \(result.stderr)")
        }
        return object
    }
}

/// Runs a system tool (mkfs, losetup, systemd-analyze…) and returns its exit
/// status and output. Outside umockdev: its preload answers ioctls on /dev
/// (losetup's) itself.
public func runToolResult(_ path: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "LD_PRELOAD" && !$0.key.hasPrefix("UMOCKDEV") }
    let output = Pipe()
    // stderr to a file: two pipes read one after the other could deadlock.
    let errors = TemporaryDirectory("uploader-tool")
    process.standardOutput = output
    FileManager.default.createFile(atPath: errors.sub("stderr"), contents: nil)
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors.sub("stderr")))
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let message = (try? String(contentsOfFile: errors.sub("stderr"), encoding: .utf8)) ?? ""
    return (process.terminationStatus, String(decoding: data, as: UTF8.self), message)
}

/// `runToolResult` that throws with the tool's stderr on a non-zero exit and
/// returns its trimmed standard output.
@discardableResult
public func runTool(_ path: String, _ arguments: [String]) throws -> String {
    let result = try runToolResult(path, arguments)
    guard result.status == 0 else {
        throw TestFailure.message("\(path) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
    }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}
