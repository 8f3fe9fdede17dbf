import Foundation

public enum ProcessMemory {
    /// This process's peak resident memory (VmHWM), in bytes; nil off Linux.
    /// Reported with every run so an admin can see memory stays flat
    /// (rusage's maxrss would include a spawning parent's memory).
    public static func peakResidentBytes() -> Int64? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kilobytes = line.dropFirst("VmHWM:".count).trimmingCharacters(in: .whitespaces).split(separator: " ").first
            return kilobytes.flatMap { Int64($0) }.map { $0 * 1024 }
        }
        return nil
    }
}
