#if canImport(Glibc)
import Glibc
#endif
import UploaderCore

/// How a child the agent ran ended, and what it said on stderr.
public struct ChildOutcome: Sendable {
    /// The exit status, or 128 + the signal that killed it.
    public var status: Int32
    public var errorOutput: String
}

extension Syscall {
    /// Runs `path` with `arguments` and exactly `environment` (nothing of the
    /// agent's own is passed on), writes `input` to its stdin, keeps the first
    /// 64 KiB of its stderr and waits for it. Blocking: posix_spawn, write, read
    /// and waitpid on the calling thread, with no run loop or dispatch queue
    /// (Foundation's Process waits on a queue that a busy process may hold back).
    public static func runChild(_ path: String, arguments: [String], environment: [String: String],
                                input: [UInt8] = []) throws -> ChildOutcome {
        var stdinPipe: [Int32] = [-1, -1], stderrPipe: [Int32] = [-1, -1]
        guard pipe(&stdinPipe) == 0 else { throw childFailure(path, errno) }
        guard pipe(&stderrPipe) == 0 else {
            close(stdinPipe[0]); close(stdinPipe[1])
            throw childFailure(path, errno)
        }
        // Only the child's own ends reach it (dup2 clears the flag on 0 and 2).
        for fd in stdinPipe + stderrPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let spawned = spawn([path] + arguments, environment: environment, searchingPath: false) { actions in
            posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        }
        close(stdinPipe[0])
        close(stderrPipe[1])
        let pid: pid_t
        do { pid = try spawned.get() } catch {
            close(stdinPipe[1]); close(stderrPipe[0])
            throw error
        }
        // A child that does not read its input closes the pipe early: EPIPE (SIGPIPE
        // is ignored by the agent) ends the writing, not the run.
        var offset = 0
        while offset < input.count {
            let written = input[offset...].withUnsafeBytes { write(stdinPipe[1], $0.baseAddress, $0.count) }
            if written < 0 { if errno == EINTR { continue } else { break } }
            offset += written
        }
        close(stdinPipe[1])
        var errorBytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(stderrPipe[0], &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            if errorBytes.count < 65536 { errorBytes += buffer[..<count] }
        }
        close(stderrPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        let signal = status & 0x7f
        return ChildOutcome(status: signal == 0 ? (status >> 8) & 0xff : 128 + signal,
                            errorOutput: String(decoding: errorBytes, as: UTF8.self))
    }

    /// Starts `command` (its first word looked up in PATH when it has no slash)
    /// with exactly `environment`, stdin from /dev/null and stdout and stderr
    /// written to the files `stdout` and `stderr` (created 0600, truncated), and
    /// returns its process id without waiting: the caller reaps it (waitpid).
    public static func startChild(_ command: [String], environment: [String: String],
                                  stdout: String, stderr: String) throws -> pid_t {
        try spawn(command, environment: environment, searchingPath: true) { actions in
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        }.get()
    }

    /// posix_spawn(p) with the file actions `streams` sets up: the one place a child starts.
    private static func spawn(_ command: [String], environment: [String: String], searchingPath: Bool,
                              streams: (inout posix_spawn_file_actions_t) -> Void) -> Result<pid_t, UploaderError> {
        guard let path = command.first else { return .failure(UploaderError(.usage, "no command to start")) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        streams(&actions)
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = searchingPath ? posix_spawnp(&pid, path, &actions, nil, argv, envp) : posix_spawn(&pid, path, &actions, nil, argv, envp)
        return spawned == 0 ? .success(pid) : .failure(childFailure(path, spawned))
    }

    private static func childFailure(_ path: String, _ code: Int32) -> UploaderError {
        UploaderError(.io, "cannot start \(path): \(String(cString: strerror(code)))")
    }
}
