import Crypto
import Foundation
import UploaderCore

extension S3Client {
    /// A small object and its ETag (what a conditional overwrite names).
    public struct TaggedObject: Sendable {
        public var bytes: [UInt8]
        public var etag: String?
    }

    /// A small object's bytes and ETag; nil if absent.
    public func getSmallTagged(key: String) throws -> TaggedObject? {
        let response = try send("GET", key: key, query: [], headers: [:], body: .none)
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
        return TaggedObject(bytes: response.body, etag: response.headers["etag"])
    }

    /// What a replacing write asks of the object already there.
    public enum ReplaceCondition: Sendable, Equatable {
        /// Only if the object still has this ETag (`If-Match`).
        case matches(String)
        /// Only if there is none (`If-None-Match: *`).
        case absent
    }

    /// Writes a small object over whatever is there (a dock's own status),
    /// with a SHA-256 checksum the store checks, only while `condition`
    /// holds. Returns the new ETag, or nil when the condition did not hold
    /// (someone else wrote the object since it was read).
    public func replaceSmall(key: String, bytes: [UInt8], contentType: String, condition: ReplaceCondition) throws -> String? {
        let digest = SHA256Hasher.hash(bytes)
        var headers: [String: String] = encryptionHeaders.merging(Self.checksumHeaders(digest)) { $1 }.merging([
            "Content-Type": contentType,
            "x-amz-content-sha256": digest.hex,
        ]) { $1 }
        switch condition {
        case .matches(let etag): headers["If-Match"] = etag
        case .absent: headers["If-None-Match"] = "*"
        }
        let response = try send("PUT", key: key, query: [], headers: headers, body: .bytes(bytes))
        if response.status == 412 || (response.status == 409 && XMLText.first("Code", in: response.bodyText) == "ConditionalRequestConflict") { return nil }
        // A store that keeps no object under the key answers If-Match with 404.
        if response.status == 404, case .matches = condition { return nil }
        guard response.status == 200 else { throw failure(writing: response) }
        return response.headers["etag"] ?? ""
    }

    /// One object of a listing, with the store's own time of its last write.
    public struct ListedObject: Sendable, Equatable {
        public var key: String
        public var lastModified: Date?
        public var size: Int64
    }

    /// Every object under `prefix` with its Last-Modified (the store's clock,
    /// which no dock sets), and the store's time now (the `Date` of the last answer).
    public func listObjects(prefix: String) throws -> (objects: [ListedObject], storeNow: Date?) {
        var objects: [ListedObject] = []
        var token: String?
        var storeNow: Date?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try send("GET", key: nil, query: query, headers: [:], body: .none)
            guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
            for entry in XMLText.all("Contents", in: response.bodyText, decoded: false) {
                guard let key = XMLText.first("Key", in: entry) else { continue }
                objects.append(ListedObject(key: key, lastModified: XMLText.first("LastModified", in: entry).flatMap(Timestamps.parse),
                                            size: XMLText.first("Size", in: entry).flatMap { Int64($0) } ?? 0))
            }
            storeNow = response.headers["date"].flatMap(Self.httpDate) ?? storeNow
            token = XMLText.first("IsTruncated", in: response.bodyText) == "true" ? XMLText.first("NextContinuationToken", in: response.bodyText) : nil
        } while token != nil
        return (objects, storeNow)
    }

    /// An HTTP date (`Wed, 02 Dec 2026 20:14:07 GMT`).
    static func httpDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }
}
