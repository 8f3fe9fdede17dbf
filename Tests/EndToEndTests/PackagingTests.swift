import Foundation
import Testing
import TestSupport
import UploaderCore

/// What the package ships is part of the product: units systemd rates as
/// well sandboxed, that it accepts, that run the agent unprivileged.
@Suite(.tags(.subprocess)) struct PackagingTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let unitFolder = packageRoot.appendingPathComponent("systemd")

    static var units: [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: unitFolder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "service" || $0.pathExtension == "timer" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static func analyze(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let result = try runToolResult("/usr/bin/systemd-analyze", arguments)
        return (result.status, result.stdout + result.stderr)
    }

    @Test func everyServiceScoresAtMostTwoInSystemdsSecurityAnalysis() throws {
        let services = Self.units.filter { $0.pathExtension == "service" }
        #expect(services.count == 3)
        for unit in services {
            let (status, output) = try Self.analyze(["security", "--offline=yes", "--no-pager", unit.path])
            let line = try #require(output.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(unit.lastPathComponent): \(output)")
            // "→ Overall exposure level for uploader.service: 1.2 OK 🙂"
            let score = try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }, "\(line)")
            #expect(score <= 2.0, "\(unit.lastPathComponent) scores \(score): \(output)")
            #expect(status == 0 || status == 1, "\(output)")
        }
    }

    @Test func systemdAcceptsEveryUnit() throws {
        // verify checks that ExecStart= binaries exist: point them at this build.
        let folder = TemporaryDirectory("uploader-units")
        var paths: [String] = []
        for unit in Self.units {
            let text = try String(contentsOf: unit, encoding: .utf8).replacingOccurrences(of: "/usr/bin/uploader", with: UploaderProcess.executable)
            let path = folder.sub(unit.lastPathComponent)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            paths.append(path)
        }
        let (status, output) = try Self.analyze(["verify", "--man=no"] + paths)
        #expect(status == 0 && output.isEmpty, "\(output)")
    }

    /// Only the dock unit's mount steps and the clearing step (remount read-write
    /// for the deletions, then back) run as root; everything else is the uploader
    /// user with no capabilities.
    @Test func theAgentRunsUnprivilegedAndOnlyTheMountStepsAreRoot() throws {
        for unit in Self.units where unit.pathExtension == "service" {
            let lines = try String(contentsOf: unit, encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(lines.contains("User=uploader") && lines.contains("Group=uploader"), "\(unit.lastPathComponent)")
            #expect(lines.contains("CapabilityBoundingSet="), "\(unit.lastPathComponent)")
            for line in lines where line.hasPrefix("Exec") {
                // `-`, `@` and `:` change nothing about who runs the command; `+`, `!` and `!!`
                // all lift `User=` (systemd.service(5)): each of them is root.
                let prefixes = line.split(separator: "=", maxSplits: 1)[1].prefix { "-@:!+|".contains($0) }
                let command = line.split(separator: "=", maxSplits: 1)[1].dropFirst(prefixes.count)
                if prefixes.contains("+") || prefixes.contains("!") {
                    // The clearing step runs as a unit of its own: it asks the store, which the dock unit's network ban forbids.
                    #expect(prefixes.filter { "+!".contains($0) } == "+" &&
                            ["/usr/bin/nsenter --mount=/proc/1/ns/mnt /usr/bin/uploader mount /dev/%I",
                             "/usr/bin/nsenter --mount=/proc/1/ns/mnt /usr/bin/uploader unmount /dev/%I",
                             "/usr/bin/systemd-run --quiet --wait --pipe --collect --service-type=exec --property=BindsTo=dev-%i.device --property=After=dev-%i.device /usr/bin/uploader camera clear-apply /dev/%I"].contains(String(command)),
                            "a command that runs as root: \(unit.lastPathComponent): \(line)")
                }
            }
        }
    }

    /// No unit reaches a device but the dock unit, and it only its own partition, read-only.
    @Test func onlyTheDockUnitReachesADeviceAndOnlyItsPartitionReadOnly() throws {
        for unit in Self.units where unit.pathExtension == "service" {
            let lines = try String(contentsOf: unit, encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(lines.contains("DevicePolicy=closed"), "\(unit.lastPathComponent)")
            let allowed = lines.filter { $0.hasPrefix("DeviceAllow=") }
            if unit.lastPathComponent == "uploader-dock@.service" {
                #expect(allowed == ["DeviceAllow=/dev/%I r"], "\(unit.lastPathComponent): \(allowed)")
            } else {
                #expect(allowed.isEmpty, "\(unit.lastPathComponent): \(allowed)")
            }
        }
    }

    /// The polkit rule lets the agent start a dock unit for a partition
    /// (sdb1) only: the root steps would act on the instance name.
    @Test func thePolkitRuleAdmitsOnlyPartitionInstances() throws {
        let rule = Self.packageRoot.appendingPathComponent("systemd/uploader.polkit.rules").path
        let admitted = ["uploader-dock@sdb1.service", "uploader-dock@sdab12.service"]
        let refused = ["uploader-dock@..-..-etc.service", "uploader-dock@disk-by\\x2dlabel-sdb1.service", "uploader-dock@sda.service",
                       "uploader-dock@sdb1.service.d", "uploader-dock@nvme0n1p1.service", "uploader-dock@sdb1-..-..-etc.service",
                       "uploader.service", "uploader-dock@.service"]
        // The rule itself, run as polkit runs it (JavaScript), when node is here; else its pattern.
        let node = ["/usr/bin/node", "/usr/bin/nodejs"].first { FileManager.default.isExecutableFile(atPath: $0) }
        func admits(_ unit: String, user: String = "uploader", verb: String = "start", action: String = "org.freedesktop.systemd1.manage-units") throws -> Bool {
            if let node {
                let script = """
                    let rule; const polkit = { addRule: f => { rule = f }, Result: { YES: "yes", NOT_HANDLED: "no" } };
                    eval(require("fs").readFileSync(process.argv[1], "utf8"));
                    const [unit, user, verb, id] = process.argv.slice(2);
                    process.stdout.write(rule({ id, lookup: k => ({ unit, verb })[k] }, { user }));
                    """
                return try runTool(node, ["-e", script, rule, unit, user, verb, action]) == "yes"
            }
            let text = try String(contentsOfFile: rule, encoding: .utf8)
            let pattern = try #require(text.split(separator: "\n").compactMap { line -> String? in
                guard let start = line.range(of: "/^"), let end = line.range(of: "$/", range: start.upperBound..<line.endIndex) else { return nil }
                return String(line[line.index(after: start.lowerBound)..<line.index(before: end.upperBound)])
            }.first)
            return user == "uploader" && verb == "start" && action == "org.freedesktop.systemd1.manage-units" && unit.range(of: pattern, options: .regularExpression) != nil
        }
        for unit in admitted { #expect(try admits(unit), "\(unit)") }
        for unit in refused { #expect(try !admits(unit), "\(unit)") }
        #expect(try !admits("uploader-dock@sdb1.service", user: "nobody"))
        // `start` and nothing else: every other verb systemd asks polkit about.
        for verb in ["stop", "restart", "reload", "reload-or-restart", "try-restart", "try-reload-or-restart", "kill", "reset-failed",
                     "set-property", "clean", "freeze", "thaw", "bind", "mount-image", "enable", "mask", ""] {
            #expect(try !admits("uploader-dock@sdb1.service", verb: verb), "verb \(verb)")
        }
        // Nor any other systemd action: enabling unit files, reloading the manager.
        for action in ["org.freedesktop.systemd1.manage-unit-files", "org.freedesktop.systemd1.reload-daemon", "org.freedesktop.systemd1.set-environment"] {
            #expect(try !admits("uploader-dock@sdb1.service", action: action), "\(action)")
        }
    }

    /// The package's postinst runs as root in folders the agent owns: a link
    /// the agent planted there (ledger.sqlite -> /etc/passwd) is never followed.
    @Test(.enabled(if: geteuid() == 0, "needs root, as dpkg runs the postinst"))
    func thePostinstNeverFollowsALinkInTheAgentsFolders() throws {
        let postinst = try String(contentsOf: Self.packageRoot.appendingPathComponent("debian/uploader.postinst"), encoding: .utf8)
        let lines = postinst.split(separator: "\n", omittingEmptySubsequences: false)
        let begin = try #require(lines.firstIndex { $0.hasPrefix("# BEGIN agent folders") })
        let end = try #require(lines.firstIndex { $0.hasPrefix("# END agent folders") })
        let folder = TemporaryDirectory("uploader-postinst")
        chmod(folder.path, 0o755)
        // Stands for /etc/passwd: root's, 0644.
        let passwd = folder.sub("passwd")
        try "root:x:0:0:root:/root:/bin/bash\n".write(toFile: passwd, atomically: false, encoding: .utf8)
        chmod(passwd, 0o644)
        // The agent (nobody here) owns its state folder, with its ledger a link to "/etc/passwd",
        // and a spool a build run as root left (root's), with the same link.
        let state = folder.sub("lib"), spool = folder.sub("spool")
        for dir in [state, spool] {
            try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
            #expect(symlink(passwd, dir + "/ledger.sqlite") == 0 && symlink(passwd, dir + "/sub/link") == 0)
        }
        #expect(lchown(state, 65534, 65534) == 0 && lchown(state + "/ledger.sqlite", 65534, 65534) == 0)
        let script = lines[begin...end].joined(separator: "\n") + """

            agent_folder "$1" nobody nogroup
            agent_folder "$2" nobody nogroup
            agent_ledger_mode "$1/ledger.sqlite" nobody nogroup
            agent_ledger_mode "$2/ledger.sqlite" nobody nogroup
            """
        let result = try runToolResult("/bin/sh", ["-c", script, "postinst", state, spool])
        #expect(result.status == 0, "\(result.stderr)")
        var info = stat()
        #expect(stat(passwd, &info) == 0)
        #expect(info.st_uid == 0 && info.st_gid == 0 && info.st_mode & 0o7777 == 0o644, "/etc/passwd's stand-in is now uid \(info.st_uid) gid \(info.st_gid) mode \(String(info.st_mode & 0o7777, radix: 8))")
        // The folders are the agent's (the spool left by root too, its links themselves).
        for dir in [state, spool] {
            #expect(lstat(dir, &info) == 0 && info.st_uid == 65534 && info.st_mode & 0o777 == 0o750, "\(dir)")
        }
        #expect(lstat(spool + "/sub/link", &info) == 0 && info.st_uid == 65534)
    }

    @Test func versionIsTheOneInDebianChangelog() throws {
        let result = try UploaderProcess.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == UploaderVersion.current)
        let changelog = try String(contentsOf: Self.packageRoot.appendingPathComponent("debian/changelog"), encoding: .utf8)
        // "uploader (0.8.0-1) bookworm; urgency=medium"
        let first = try #require(changelog.split(separator: "\n").first)
        #expect(first.hasPrefix("uploader (\(UploaderVersion.current)) "), "\(first)")
    }
}
