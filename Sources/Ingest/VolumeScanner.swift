import Foundation
import SystemPackage
import UploaderCore
import Platform

/// One entry found on a camera volume.
public struct VolumeEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case media
        /// A symbolic link, device node, FIFO or socket, or folders nested too
        /// deep: recorded and held, never followed or copied.
        case hostile(String)
    }

    /// Path relative to the volume root, `/`-separated.
    public var relativePath: String
    public var size: Int64
    public var modifiedNanoseconds: Int64
    public var kind: Kind
}

/// Walks a camera volume without ever following a symbolic link: every
/// directory is opened relative to its parent's descriptor with O_NOFOLLOW,
/// so nothing on the volume can lead the walk outside it.
public struct VolumeScanner {
    public var profile: IngestProfile
    public var maximumDepth = 16

    public init(profile: IngestProfile) {
        self.profile = profile
    }

    public func scan(root: String) throws -> [VolumeEntry] {
        let rootFD: FileDescriptor
        do {
            rootFD = try FileDescriptor.open(FilePath(root), .readOnly, options: [.directory, .closeOnExec])
        } catch let error as Errno {
            throw UploaderError(.sourceVanished, "cannot open the camera volume \(root): check that it is mounted and readable",
                                cause: error.summary)
        }
        defer { try? rootFD.close() }
        var entries: [VolumeEntry] = []
        if profile.mediaFolders.isEmpty {
            try walk(rootFD, prefix: "", depth: 0, into: &entries)
            return entries
        }
        for folder in profile.mediaFolders {
            // Each configured folder through the one safe walk; FAT volumes are case-insensitive,
            // so the camera's spelling may differ from the model file's.
            let components = folder.split(separator: "/").map(String.init).filter { $0 != "." && !$0.isEmpty }
            if components.isEmpty {
                try walk(rootFD, prefix: "", depth: 0, into: &entries)
                continue
            }
            guard !components.contains(".."),
                  let media = try? Syscall.openBeneath(rootFD, components.joined(separator: "/"), directory: true, ignoringCase: true) else { continue }
            defer { try? media.close() }
            try walk(media, prefix: components.joined(separator: "/"), depth: components.count, into: &entries)
        }
        return entries
    }

    static let hostMetadata: Set<String> = [
        "System Volume Information", "$RECYCLE.BIN", ".Trashes", ".Spotlight-V100", ".fseventsd",
        ".DS_Store", ".TemporaryItems", ".Trash-1000", "lost+found",
    ]

    private func walk(_ directory: FileDescriptor, prefix: String, depth: Int, into entries: inout [VolumeEntry]) throws {
        let names: [String]
        do {
            names = try Syscall.directoryEntries(directory)
        } catch {
            throw UploaderError(.sourceVanished, "cannot list \(prefix.isEmpty ? "the camera volume" : prefix): the camera may have been removed",
                                cause: error.summary)
        }
        for name in names {
            // What host operating systems leave on a volume is not the camera's. Any other
            // name, even one that starts with a dot ("..MP4"), is looked at like the rest.
            if Self.hostMetadata.contains(name) || name.hasPrefix("._") { continue }
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            // A name that is not UTF-8 arrives with its bad bytes escaped (Syscall.displayName)
            // and is opened by its exact bytes: it is copied like any other file.
            let info: stat
            do {
                info = try Syscall.fstatAt(directory, name)
            } catch {
                throw UploaderError(.sourceVanished, "cannot read \(relative) on the camera: the camera may have been removed", cause: error.summary)
            }
            let mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                guard depth < maximumDepth else {
                    entries.append(VolumeEntry(relativePath: relative, size: 0, modifiedNanoseconds: mtime,
                                               kind: .hostile("folders nested deeper than \(maximumDepth) levels")))
                    continue
                }
                guard let child = try? Syscall.openAt(directory, name, O_RDONLY | O_DIRECTORY) else { continue }
                defer { try? child.close() }
                try walk(child, prefix: relative, depth: depth + 1, into: &entries)
            case S_IFREG:
                guard profile.accepts(fileName: name) else { continue }
                entries.append(VolumeEntry(relativePath: relative, size: Int64(info.st_size), modifiedNanoseconds: mtime, kind: .media))
            case S_IFLNK:
                entries.append(VolumeEntry(relativePath: relative, size: 0, modifiedNanoseconds: mtime,
                                           kind: .hostile("a symbolic link; links are never followed")))
            default:
                entries.append(VolumeEntry(relativePath: relative, size: 0, modifiedNanoseconds: mtime,
                                           kind: .hostile("a device node, FIFO or socket, not a media file")))
            }
        }
    }
}
