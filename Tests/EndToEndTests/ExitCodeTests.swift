import Foundation
import Testing
import TestSupport
import UploaderCore

/// Exit statuses are one enum with one meaning each, documented in one table
/// (docs/exit-codes.md): scripts and systemd units branch on them.
@Suite(.tags(.subprocess)) struct ExitCodeTests {
    /// The rows of docs/exit-codes.md: code and name.
    static func documentedTable() throws -> [(code: Int32, name: String)] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/exit-codes.md"), encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > 3, let code = Int32(cells[1]) else { return nil }
            return (code, cells[2])
        }
    }

    @Test func everyStatusIsDocumentedOnceWithItsCode() throws {
        let table = try Self.documentedTable()
        let documented = Dictionary(table.map { ($0.name, $0.code) }, uniquingKeysWith: { first, _ in first })
        #expect(table.count == ExitStatus.allCases.count, "\(table)")
        #expect(Set(table.map(\.code)).count == table.count, "a code documented twice: \(table)")
        for status in ExitStatus.allCases {
            #expect(documented["\(status)"] == status.rawValue, "\(status) is \(status.rawValue) in the code, \(documented["\(status)"].map(String.init) ?? "absent") in docs/exit-codes.md")
        }
    }

    /// A mistyped bag path is the admin's slip, not an evidence problem (4):
    /// a court clerk must not read "NOT VALID" for a folder that is not there.
    @Test func verifyBagOfAFolderThatIsNotThereIsAUsageError() throws {
        let folder = TemporaryDirectory()
        let result = try UploaderProcess.run(["verify-bag", folder.sub("no-such-bag")])
        #expect(result.status == ExitStatus.usage.rawValue, "\(result.status): \(result.stdout)\(result.stderr)")
        #expect(result.stderr == "error: \(folder.sub("no-such-bag")) is not a folder: give the folder `uploader export` wrote the bag into\n", "\(result.stderr)")
        #expect(!result.stdout.contains("NOT VALID"))
    }

    /// argument-parser's own usage errors (an unknown option, a failed
    /// `validate()`) exit with EX_USAGE (64) unless the command maps them.
    @Test func aUsageErrorExitsTwoWithOneLineThatSaysWhatIsWrong() throws {
        let unknownOption = try UploaderProcess.run(["upload", "--no-such-option"])
        #expect(unknownOption.status == ExitStatus.usage.rawValue, "\(unknownOption.status): \(unknownOption.stderr)")
        #expect(unknownOption.stderr.contains("Unknown option '--no-such-option'"), "\(unknownOption.stderr)")

        let failedValidation = try UploaderProcess.run(["retry"])
        #expect(failedValidation.status == ExitStatus.usage.rawValue, "\(failedValidation.status): \(failedValidation.stderr)")
        #expect(failedValidation.stderr.contains("name files, --device, --user, or --all-failed"), "\(failedValidation.stderr)")

        let unknownCommand = try UploaderProcess.run(["no-such-command"])
        #expect(unknownCommand.status == ExitStatus.usage.rawValue, "\(unknownCommand.status): \(unknownCommand.stderr)")
    }

    @Test func helpAndVersionStillExitZero() throws {
        let help = try UploaderProcess.run(["upload", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE"), "\(help.stdout)\(help.stderr)")
        let version = try UploaderProcess.run(["--version"])
        #expect(version.status == 0 && !version.stdout.isEmpty, "\(version.stdout)\(version.stderr)")
    }
}
