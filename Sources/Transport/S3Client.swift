import Crypto
import Foundation
import SystemPackage
import UploaderCore
import Platform

extension UploaderError {
    /// The store's error answer, classified: whether to retry is then
    /// `isRetryable`'s to say; how long to wait, `RetryPolicy`'s.
    static func storeAnswer(_ response: HTTPResponse, encryptionAsked: Bool = false) -> UploaderError {
        let code = XMLText.first("Code", in: response.bodyText) ?? "HTTP\(response.status)"
        let message = XMLText.first("Message", in: response.bodyText) ?? "the store answered HTTP \(response.status)"
        let retryAfter = response.headers["retry-after"].flatMap { RetryPolicy.parseRetryAfter($0) }
        let underlying = Underlying.s3(status: response.status, code: code, retryAfter: retryAfter)
        let answer = "\(code) (HTTP \(response.status)): \(message)"
        let lowercased = code.lowercased()
        // With server-side encryption asked for, a store that cannot do it
        // (SeaweedFS without a KMS answers InternalError) is told apart, so the
        // admin hears about the setting instead of endless retries.
        if encryptionAsked, code == "InternalError" || code == "NotImplemented" || response.status == 501
            || lowercased.contains("kms") || lowercased.contains("encryption") {
            return UploaderError(.storeEncryptionRefused, "the evidence store refused the server-side encryption asked for (\(code): \(message)): it may have no KMS; check [store] server_side_encryption and kms_key_id (\"\" leaves encryption to the bucket's default)", underlying: underlying)
        }
        switch (response.status, code) {
        case (_, "SlowDown"), (_, "RequestTimeout"), (_, "InternalError"), (_, "ServiceUnavailable"),
             (429, _), (408, _), (500...599, _):
            return UploaderError(.storeUnavailable, answer, underlying: underlying)
        case (_, "BadDigest"), (_, "XAmzContentSHA256Mismatch"), (_, "XAmzContentChecksumMismatch"), (_, "InvalidDigest"):
            return UploaderError(.storeChecksumMismatch, answer, underlying: underlying)
        case (_, "PreconditionFailed"), (412, _):
            return UploaderError(.storeObjectExists, answer, underlying: underlying)
        case (_, "NoSuchUpload"):
            return UploaderError(.storeUploadGone, answer, underlying: underlying)
        case (_, "NoSuchBucket"):
            return UploaderError(.storeMissingBucket, "the evidence store has no such bucket (\(code)): check [store] bucket in the configuration", underlying: underlying)
        case (_, "RequestTimeTooSkewed"):
            return UploaderError(.storeAuth, "the evidence store rejected our clock (\(code)): set this PC's clock right (NTP), then run `uploader upload` again", underlying: underlying)
        case (401, _), (403, _), (_, "SignatureDoesNotMatch"), (_, "InvalidAccessKeyId"), (_, "AccessDenied"):
            return UploaderError(.storeAuth, "the evidence store refused our credentials (\(code)): check the access key and secret in the credentials file, then run `uploader upload` again", underlying: underlying)
        default:
            return UploaderError(.storeRejected, answer, underlying: underlying)
        }
    }
}

/// What the store says about one object.
public struct ObjectHead: Sendable {
    public var size: Int64
    public var checksumSHA256: String?
    /// `x-amz-checksum-type` (COMPOSITE or FULL_OBJECT) where the store sends it.
    public var checksumType: String? = nil
    public var metadata: [String: String]
    /// Object Lock as the store reports it for this version.
    public var lockMode: String? = nil
    public var retainUntil: Date? = nil
    public var legalHold = false
    /// The version this answer describes (`x-amz-version-id`; nil on a store without versioning).
    public var versionID: String? = nil
}

/// What an object carries besides its bytes: S3 object tags (case, incident,
/// category) and the Object Lock the store must enforce.
public struct ObjectSettings: Sendable, Equatable {
    public var tags: [String: String]
    public var lockMode: String?
    public var retainUntil: Date?
    public var legalHold: Bool

    public init(tags: [String: String] = [:], lockMode: String? = nil, retainUntil: Date? = nil, legalHold: Bool = false) {
        self.tags = tags
        self.lockMode = lockMode
        self.retainUntil = retainUntil
        self.legalHold = legalHold
    }

    /// The headers of a PUT or CreateMultipartUpload that set them.
    var headers: [String: String] {
        var headers: [String: String] = [:]
        if !tags.isEmpty { headers["x-amz-tagging"] = S3Client.tagQuery(tags) }
        if let lockMode, let retainUntil {
            headers["x-amz-object-lock-mode"] = lockMode
            headers["x-amz-object-lock-retain-until-date"] = S3Client.lockDate(retainUntil)
        }
        if legalHold { headers["x-amz-object-lock-legal-hold"] = "ON" }
        return headers
    }
}

/// One entry of ListObjectVersions for a key.
public struct ObjectVersion: Sendable, Equatable {
    public var versionID: String
    public var isLatest: Bool
    public var isDeleteMarker: Bool
    public var size: Int64
    public var lastModified: Date?
}

/// The S3 calls the uploader needs, signed with SigV4 by libcurl.
/// Not Sendable: one client (one curl handle) per worker thread.
public final class S3Client {
    public struct Target: Sendable {
        public var endpoint: String
        public var bucket: String
        public var addressing: Configuration.Addressing

        public init(endpoint: String, bucket: String, addressing: Configuration.Addressing) {
            self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
            self.bucket = bucket
            self.addressing = addressing
        }
    }

    let target: Target
    let settings: CurlSettings
    let curl = CurlEasy()
    /// Shared by every client of a run; nil means no limit.
    public var limiter: BandwidthLimiter?
    /// Aborts a running body transfer when set.
    public var stop: StopFlag?
    static let emptyPayloadHash = SHA256Hasher.hash([UInt8]()).hex
    /// Media bodies are not hashed into the signature: the signed
    /// `x-amz-checksum-sha256` header already binds the body, and the store
    /// verifies it (one SHA-256 on the store's side instead of two).
    static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// `x-amz-server-side-encryption` (and the KMS key id) for every object written.
    let encryptionHeaders: [String: String]

    public init(target: Target, region: String, credentials: Credentials, connectTimeout: Int = 15,
                stallTimeout: Int = 60, caBundle: String? = nil, serverSideEncryption: Configuration.ServerSideEncryption? = nil) {
        self.target = target
        self.encryptionHeaders = serverSideEncryption?.headers ?? [:]
        self.settings = CurlSettings(region: region, accessKeyID: credentials.accessKeyID,
                                     secretAccessKey: credentials.secretAccessKey,
                                     connectTimeout: connectTimeout, stallTimeout: stallTimeout, caBundle: caBundle)
    }

    public convenience init(configuration: Configuration, credentials: Credentials) {
        self.init(target: Target(endpoint: configuration.store.endpoint, bucket: configuration.store.bucket,
                                 addressing: configuration.store.addressing),
                  region: configuration.store.region, credentials: credentials,
                  connectTimeout: configuration.upload.connectTimeout, stallTimeout: configuration.upload.stallTimeout,
                  caBundle: configuration.store.caBundle, serverSideEncryption: configuration.store.serverSideEncryption)
    }

    // MARK: - Requests

    /// Creates the bucket (for the demo and tests); an existing bucket we own is fine.
    public func createBucket() throws {
        let response = try send("PUT", key: nil, query: [], headers: [:], body: .none)
        if response.status == 200 || XMLText.first("Code", in: response.bodyText) == "BucketAlreadyOwnedByYou" { return }
        throw UploaderError.storeAnswer(response)
    }

    /// One PUT of a whole file, refused by the store if an object already has the key.
    /// `hashBody`: the bytes read are hashed and the transfer aborted before its
    /// end if they are not `sha256` (needless where another proof holds).
    public func putObject(key: String, file: any PositionalReader, size: Int64, sha256: SHA256Digest,
                          metadata: [String: String], settings: ObjectSettings = ObjectSettings(),
                          hashBody: Bool = true, progress: ((Int64) -> Void)? = nil) throws -> String {
        var headers = metadataHeaders(metadata).merging(encryptionHeaders) { $1 }.merging(settings.headers) { $1 }
        headers["x-amz-content-sha256"] = Self.unsignedPayload
        headers.merge(Self.checksumHeaders(sha256)) { $1 }
        headers["If-None-Match"] = "*"
        let response = try send("PUT", key: key, query: [], headers: headers,
                                body: .file(file, offset: 0, length: size), progress: progress, bodySHA256: hashBody ? sha256 : nil)
        guard response.status == 200 else { throw failure(writing: response) }
        return response.headers["etag"] ?? ""
    }

    public func createMultipartUpload(key: String, metadata: [String: String], settings: ObjectSettings = ObjectSettings()) throws -> String {
        var headers = metadataHeaders(metadata).merging(encryptionHeaders) { $1 }.merging(settings.headers) { $1 }
        headers["x-amz-checksum-algorithm"] = "SHA256"
        let response = try send("POST", key: key, query: [("uploads", "")], headers: headers, body: .none)
        guard response.status == 200, let uploadID = XMLText.first("UploadId", in: response.bodyText) else {
            throw failure(writing: response)
        }
        return uploadID
    }

    public func uploadPart(key: String, uploadID: String, number: Int, file: any PositionalReader, offset: Int64,
                           size: Int64, sha256: SHA256Digest, hashBody: Bool = true, progress: ((Int64) -> Void)? = nil) throws -> String {
        let headers = Self.checksumHeaders(sha256).merging(["x-amz-content-sha256": Self.unsignedPayload]) { $1 }
        let response = try send("PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                headers: headers, body: .file(file, offset: offset, length: size), progress: progress,
                                bodySHA256: hashBody ? sha256 : nil)
        guard response.status == 200, let etag = response.headers["etag"] else { throw UploaderError.storeAnswer(response) }
        return etag
    }

    public struct CompletedPart: Sendable {
        public var number: Int
        public var etag: String
        public var sha256: SHA256Digest

        public init(number: Int, etag: String, sha256: SHA256Digest) {
            self.number = number
            self.etag = etag
            self.sha256 = sha256
        }
    }

    /// Completes the upload; `If-None-Match: *` keeps it from replacing an existing object.
    public func completeMultipartUpload(key: String, uploadID: String, parts: [CompletedPart]) throws {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(XMLText.escape(part.etag))</ETag>"
            xml += "<ChecksumSHA256>\(part.sha256.base64)</ChecksumSHA256></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        let headers = ["x-amz-content-sha256": SHA256Hasher.hash(body).hex, "If-None-Match": "*"]
        let response = try send("POST", key: key, query: [("uploadId", uploadID)], headers: headers, body: .bytes(body))
        // S3 may answer 200 and put the error in the body.
        guard response.status == 200, XMLText.first("Error", in: response.bodyText) == nil,
              !response.bodyText.contains("<Error>") else {
            throw UploaderError.storeAnswer(HTTPResponse(status: response.status == 200 ? 500 : response.status,
                                              headers: response.headers, body: response.body))
        }
    }

    public func abortMultipartUpload(key: String, uploadID: String) throws {
        let response = try send("DELETE", key: key, query: [("uploadId", uploadID)], headers: [:], body: .none)
        guard response.status == 204 || response.status == 200 || response.status == 404 else { throw UploaderError.storeAnswer(response) }
    }

    /// Creates a bucket with Object Lock enabled (tests and the demo).
    public func createLockedBucket() throws {
        let response = try send("PUT", key: nil, query: [], headers: ["x-amz-bucket-object-lock-enabled": "true"], body: .none)
        if response.status == 200 || XMLText.first("Code", in: response.bodyText) == "BucketAlreadyOwnedByYou" { return }
        throw UploaderError.storeAnswer(response)
    }

    /// Whether the bucket has Object Lock enabled.
    public func objectLockEnabled() throws -> Bool {
        let response = try send("GET", key: nil, query: [("object-lock", "")], headers: [:], body: .none)
        if response.status == 404 || XMLText.first("Code", in: response.bodyText) == "ObjectLockConfigurationNotFoundError" { return false }
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
        return XMLText.first("ObjectLockEnabled", in: response.bodyText) == "Enabled"
    }

    /// The bucket's versioning: "Enabled", "Suspended", or nil when it was never turned on.
    public func versioning() throws -> String? {
        let response = try send("GET", key: nil, query: [("versioning", "")], headers: [:], body: .none)
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
        return XMLText.first("Status", in: response.bodyText)
    }

    public enum WriteOnceOutcome: Sendable, Equatable { case created, exists }

    /// Writes a small object once: `If-None-Match: *`, a SHA-256 checksum the
    /// store checks, and Object Lock retention until `lockedUntil` when given.
    /// `.exists` when an object already has the key (nothing was written).
    public func putOnce(key: String, bytes: [UInt8], contentType: String, lockedUntil: Date? = nil) throws -> WriteOnceOutcome {
        let digest = SHA256Hasher.hash(bytes)
        var headers: [String: String] = encryptionHeaders.merging(Self.checksumHeaders(digest)) { $1 }.merging([
            "Content-Type": contentType,
            "x-amz-content-sha256": digest.hex,
            "If-None-Match": "*",
        ]) { $1 }
        if let lockedUntil {
            headers["x-amz-object-lock-mode"] = "GOVERNANCE"
            headers["x-amz-object-lock-retain-until-date"] = Timestamps.iso(lockedUntil)
        }
        let response = try send("PUT", key: key, query: [], headers: headers, body: .bytes(bytes))
        if response.status == 412 || (response.status == 409 && XMLText.first("Code", in: response.bodyText) == "ConditionalRequestConflict") { return .exists }
        guard response.status == 200 else { throw failure(writing: response) }
        return .created
    }

    /// Where (under the prefix) the checksum probe's scratch objects go.
    public static let checksumProbeFolder = ".uploader-checksum-probe/"

    /// What the store did with a body whose `x-amz-checksum-sha256` is wrong.
    public struct ChecksumProbe: Sendable, Equatable {
        /// The store refused it: every upload's checksum is checked by the store.
        public var enforced: Bool
        /// The scratch object the store took and that could not be deleted again.
        public var leftover: String?
    }

    /// PUTs a few bytes under a scratch key with a deliberately wrong SHA-256
    /// checksum: a store that answers 2xx does not check checksums, so its
    /// own checksum proves nothing and objects must be read back. What it
    /// took is deleted again (by version on a versioned bucket). The scratch
    /// key is under `prefix` (`[store] prefix`), where the agent may write.
    public func probeChecksumEnforcement(under prefix: String) throws -> ChecksumProbe {
        let folder = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        let key = (folder.isEmpty ? "" : folder + "/") + Self.checksumProbeFolder + UUID().uuidString.lowercased()
        let body = Array("uploader checksum probe: these bytes do not match the checksum sent with them\n".utf8)
        let wrong = SHA256Hasher.hash(Array("other bytes".utf8))
        var headers = encryptionHeaders.merging(Self.checksumHeaders(wrong)) { $1 }
        headers["x-amz-content-sha256"] = SHA256Hasher.hash(body).hex
        headers["If-None-Match"] = "*"
        let response = try send("PUT", key: key, query: [], headers: headers, body: .bytes(body))
        guard (200...299).contains(response.status) else {
            // A write like any upload's: a store that cannot encrypt is told apart.
            let refusal = failure(writing: response)
            // Only a refusal that names the checksum proves enforcement; any other
            // refusal leaves it unknown, which the caller treats as not enforced.
            if refusal.code == .storeChecksumMismatch { return ChecksumProbe(enforced: true) }
            throw refusal
        }
        let version = response.headers["x-amz-version-id"].flatMap { $0 == "null" ? nil : $0 }
        let deleted = try? deleteObject(key: key, versionID: version)
        let gone = deleted.map { (200...299).contains($0.status) } ?? false
        return ChecksumProbe(enforced: false, leftover: gone ? nil : key + (version.map { " version \($0)" } ?? ""))
    }

    /// A refused write: with server-side encryption asked for, a store that cannot do it is told apart.
    func failure(writing response: HTTPResponse) -> UploaderError {
        UploaderError.storeAnswer(response, encryptionAsked: !encryptionHeaders.isEmpty)
    }

    /// A small object's bytes (checkpoints, the dock key); nil if absent.
    /// Larger answers are cut at the response limit: not for media.
    public func getSmall(key: String) throws -> [UInt8]? {
        let response = try send("GET", key: key, query: [], headers: [:], body: .none)
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
        return response.body
    }

    /// The object's size, the store's own SHA-256 checksum and our metadata; nil if absent.
    public func headObject(key: String) throws -> ObjectHead? {
        let response = try send("HEAD", key: key, query: [], headers: ["x-amz-checksum-mode": "ENABLED"], body: .none)
        if response.status == 404 { return nil }
        guard response.status == 200 else {
            throw UploaderError.storeAnswer(HTTPResponse(status: response.status, headers: response.headers,
                                              body: Array("<Code>HTTP\(response.status)</Code>".utf8)))
        }
        // An answer cut short can still parse as "200": without its length it proves nothing.
        guard let length = response.headers["content-length"].flatMap({ Int64($0) }) else {
            throw UploaderError(.storeUnavailable, "the store's answer to HEAD \(key) had no Content-Length")
        }
        var metadata: [String: String] = [:]
        for (name, value) in response.headers where name.hasPrefix("x-amz-meta-") {
            metadata[String(name.dropFirst("x-amz-meta-".count))] = Self.metadataValue(value)
        }
        return ObjectHead(size: length, checksumSHA256: response.headers["x-amz-checksum-sha256"],
                          checksumType: response.headers["x-amz-checksum-type"], metadata: metadata,
                          lockMode: response.headers["x-amz-object-lock-mode"],
                          retainUntil: response.headers["x-amz-object-lock-retain-until-date"].flatMap { Timestamps.parse($0) },
                          legalHold: response.headers["x-amz-object-lock-legal-hold"] == "ON",
                          versionID: response.headers["x-amz-version-id"].flatMap { $0 == "null" ? nil : $0 })
    }

    // MARK: - Tags, retention, legal hold, versions

    /// `x-amz-tagging` / query form of tags: sorted, each name and value URI-encoded.
    static func tagQuery(_ tags: [String: String]) -> String {
        tags.sorted { $0.key < $1.key }.map { "\(uriEncode($0.key))=\(uriEncode($0.value))" }.joined(separator: "&")
    }

    /// Object Lock dates in the form every store accepts (whole seconds, UTC).
    static func lockDate(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }

    static let xmlns = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

    /// The body's SHA-256 as AWS's SDKs send it: the checksum, and the
    /// algorithm named in `x-amz-sdk-checksum-algorithm`. AWS requires one
    /// of Content-MD5 or this pair on every write with Object Lock parameters
    /// (and on a bucket with default retention), and its API model marks
    /// `?tagging`, `?retention` and `?legal-hold` PUTs as needing a body
    /// checksum. SHA-256, not MD5: MD5 is unavailable under a FIPS OpenSSL.
    static func checksumHeaders(_ digest: SHA256Digest) -> [String: String] {
        ["x-amz-checksum-sha256": digest.base64, "x-amz-sdk-checksum-algorithm": "SHA256"]
    }

    /// Sends a small XML body to a sub-resource (`?tagging`, `?retention`, `?legal-hold`), its hash signed.
    func putSubresource(_ name: String, key: String, xml: String, headers: [String: String] = [:]) throws -> HTTPResponse {
        let body = Array(xml.utf8)
        let digest = SHA256Hasher.hash(body)
        var all = headers.merging(Self.checksumHeaders(digest)) { $1 }
        all["x-amz-content-sha256"] = digest.hex
        all["Content-Type"] = "application/xml"
        return try send("PUT", key: key, query: [(name, "")], headers: all, body: .bytes(body))
    }

    /// Replaces the object's tags (its current version).
    public func putObjectTagging(key: String, tags: [String: String]) throws {
        let set = tags.sorted { $0.key < $1.key }.map { "<Tag><Key>\(XMLText.escape($0.key))</Key><Value>\(XMLText.escape($0.value))</Value></Tag>" }.joined()
        let response = try putSubresource("tagging", key: key, xml: "<Tagging \(Self.xmlns)><TagSet>\(set)</TagSet></Tagging>")
        guard response.status == 200 || response.status == 204 else { throw UploaderError.storeAnswer(response) }
    }

    public func objectTagging(key: String) throws -> [String: String] {
        let response = try send("GET", key: key, query: [("tagging", "")], headers: [:], body: .none)
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
        var tags: [String: String] = [:]
        for block in XMLText.all("Tag", in: response.bodyText, decoded: false) {
            if let name = XMLText.first("Key", in: block), let value = XMLText.first("Value", in: block) { tags[name] = value }
        }
        return tags
    }

    /// Sets the object's retention. `bypassGovernance` only to make a GOVERNANCE lock COMPLIANCE (stricter).
    public func putObjectRetention(key: String, mode: String, until: Date, bypassGovernance: Bool = false) throws {
        let xml = "<Retention \(Self.xmlns)><Mode>\(mode)</Mode><RetainUntilDate>\(Self.lockDate(until))</RetainUntilDate></Retention>"
        let response = try putSubresource("retention", key: key, xml: xml, headers: bypassGovernance ? ["x-amz-bypass-governance-retention": "true"] : [:])
        guard response.status == 200 || response.status == 204 else { throw UploaderError.storeAnswer(response) }
    }

    public func putObjectLegalHold(key: String, on: Bool) throws {
        let response = try putSubresource("legal-hold", key: key, xml: "<LegalHold \(Self.xmlns)><Status>\(on ? "ON" : "OFF")</Status></LegalHold>")
        guard response.status == 200 || response.status == 204 else { throw UploaderError.storeAnswer(response) }
    }

    /// Deletes one version (`versionID`) or, without it, adds a delete marker. Used by tests and by nothing that deletes evidence.
    public func deleteObject(key: String, versionID: String? = nil) throws -> HTTPStatus {
        let response = try send("DELETE", key: key, query: versionID.map { [("versionId", $0)] } ?? [], headers: [:], body: .none)
        return HTTPStatus(status: response.status, code: XMLText.first("Code", in: response.bodyText))
    }

    public struct HTTPStatus: Sendable, Equatable {
        public var status: Int
        public var code: String?
    }

    /// The versions and delete markers of exactly `key` (ListObjectVersions with the key as prefix).
    public func versions(of key: String) throws -> [ObjectVersion] {
        let response = try send("GET", key: nil, query: [("versions", ""), ("prefix", key)], headers: [:], body: .none)
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
        var found: [ObjectVersion] = []
        for (element, isMarker) in [("Version", false), ("DeleteMarker", true)] {
            for block in XMLText.all(element, in: response.bodyText, decoded: false) where XMLText.first("Key", in: block) == key {
                guard let id = XMLText.first("VersionId", in: block) else { continue }
                found.append(ObjectVersion(versionID: id, isLatest: XMLText.first("IsLatest", in: block) == "true", isDeleteMarker: isMarker,
                                           size: XMLText.first("Size", in: block).flatMap { Int64($0) } ?? 0,
                                           lastModified: XMLText.first("LastModified", in: block).flatMap { Timestamps.parse($0) }))
            }
        }
        return found
    }

    /// HEAD of one version: its checksum and lock (for a key a delete marker hides).
    public func headObject(key: String, versionID: String) throws -> ObjectHead? {
        let response = try send("HEAD", key: key, query: [("versionId", versionID)], headers: ["x-amz-checksum-mode": "ENABLED"], body: .none)
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
        return ObjectHead(size: response.headers["content-length"].flatMap { Int64($0) } ?? 0, checksumSHA256: response.headers["x-amz-checksum-sha256"],
                          checksumType: response.headers["x-amz-checksum-type"], metadata: [:], lockMode: response.headers["x-amz-object-lock-mode"],
                          retainUntil: response.headers["x-amz-object-lock-retain-until-date"].flatMap { Timestamps.parse($0) },
                          legalHold: response.headers["x-amz-object-lock-legal-hold"] == "ON", versionID: versionID)
    }

    public struct MultipartUpload: Sendable {
        public var key: String
        public var uploadID: String
        public var initiated: Date?
    }

    /// Unfinished multipart uploads under `prefix` (ListMultipartUploads, all pages).
    public func listMultipartUploads(prefix: String) throws -> [MultipartUpload] {
        var uploads: [MultipartUpload] = []
        var markers: (key: String, upload: String)?
        repeat {
            var query = [("uploads", ""), ("prefix", prefix)]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.upload)] }
            let response = try send("GET", key: nil, query: query, headers: [:], body: .none)
            guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
            for block in XMLText.all("Upload", in: response.bodyText, decoded: false) {
                guard let key = XMLText.first("Key", in: block), let id = XMLText.first("UploadId", in: block) else { continue }
                let initiated = XMLText.first("Initiated", in: block).flatMap { Timestamps.parse($0) }
                uploads.append(MultipartUpload(key: key, uploadID: id, initiated: initiated))
            }
            if XMLText.first("IsTruncated", in: response.bodyText) == "true",
               let key = XMLText.first("NextKeyMarker", in: response.bodyText), let upload = XMLText.first("NextUploadIdMarker", in: response.bodyText) {
                markers = (key, upload)
            } else {
                markers = nil
            }
        } while markers != nil
        return uploads
    }

    /// Every key under `prefix` (ListObjectsV2, following continuation tokens); after `startAfter` when given.
    public func listObjectKeys(prefix: String = "", startAfter: String? = nil) throws -> [String] {
        var keys: [String] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let startAfter { query.append(("start-after", startAfter)) }
            if let token { query.append(("continuation-token", token)) }
            let response = try send("GET", key: nil, query: query, headers: [:], body: .none)
            guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
            keys += XMLText.all("Key", in: response.bodyText)
            token = XMLText.first("IsTruncated", in: response.bodyText) == "true" ? XMLText.first("NextContinuationToken", in: response.bodyText) : nil
        } while token != nil
        return keys
    }

    /// Streams the object through SHA-256 without storing it: the fallback
    /// proof for stores that keep no checksum.
    /// Streams an object's bytes to `sink` as they arrive (constant memory).
    /// With `versionID`, that version (reachable behind a delete marker or a later overwrite).
    public func getObject(key: String, versionID: String? = nil, sink: @escaping (UnsafeRawBufferPointer) -> Void) throws {
        let response = try send("GET", key: key, query: versionID.map { [("versionId", $0)] } ?? [], headers: [:], body: .none, responseSink: sink)
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
    }

    public func hashObject(key: String, versionID: String? = nil) throws -> (size: Int64, sha256: SHA256Digest) {
        let hasher = SHA256Hasher()
        var size: Int64 = 0
        let response = try send("GET", key: key, query: versionID.map { [("versionId", $0)] } ?? [], headers: [:], body: .none, responseSink: { bytes in
            hasher.update(bytes)
            size += Int64(bytes.count)
        })
        guard response.status == 200 else { throw UploaderError.storeAnswer(response) }
        return (size, hasher.finalize())
    }

    // MARK: - Plumbing

    func send(_ method: String, key: String?, query: [(String, String)], headers: [String: String], body: RequestBody,
              responseSink: ((UnsafeRawBufferPointer) -> Void)? = nil, progress: ((Int64) -> Void)? = nil,
              bodySHA256: SHA256Digest? = nil) throws -> HTTPResponse {
        // A "." or ".." segment is resolved away on the way to the store: the
        // request would address another key, or (path-style) another bucket.
        if let key, key.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == "." || $0 == ".." }) {
            throw UploaderError(.config, "the object key \(key) has a \".\" or \"..\" segment, which would address another object or bucket: check [store] prefix and key_template")
        }
        var allHeaders = headers
        if allHeaders["x-amz-content-sha256"] == nil {
            // libcurl 7.88 signs the empty payload hash unless told otherwise, and
            // sends no x-amz-content-sha256: a store that hashes the body it got
            // (as AWS and moto do) then computes another signature.
            switch body {
            case .none: allHeaders["x-amz-content-sha256"] = Self.emptyPayloadHash
            case .bytes(let bytes): allHeaders["x-amz-content-sha256"] = SHA256Hasher.hash(bytes).hex
            case .file: allHeaders["x-amz-content-sha256"] = Self.unsignedPayload
            }
        }
        return try curl.perform(method: method, url: url(key: key, query: query), headers: allHeaders, body: body,
                                settings: settings, responseSink: responseSink, progress: progress, limiter: limiter, stop: stop,
                                bodySHA256: bodySHA256)
    }

    /// Builds the URL with the key and query already in SigV4's canonical
    /// form (each segment URI-encoded, parameters sorted, `name=` for empty
    /// values), so the signature does not depend on libcurl's normalisation.
    func url(key: String?, query: [(String, String)]) -> String {
        var base: String
        switch target.addressing {
        case .path:
            base = target.endpoint + "/" + target.bucket
        case .virtualHosted:
            if let schemeEnd = target.endpoint.range(of: "://") {
                base = target.endpoint[..<schemeEnd.upperBound] + target.bucket + "." + target.endpoint[schemeEnd.upperBound...]
            } else {
                base = target.bucket + "." + target.endpoint
            }
        }
        if let key {
            base += "/" + key.split(separator: "/", omittingEmptySubsequences: false).map { Self.uriEncode(String($0)) }.joined(separator: "/")
        } else if target.addressing == .virtualHosted {
            base += "/"
        }
        if !query.isEmpty {
            base += "?" + query.sorted { $0.0 < $1.0 }.map { "\(Self.uriEncode($0.0))=\(Self.uriEncode($0.1))" }.joined(separator: "&")
        }
        return base
    }

    static func uriEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(byte)))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// `x-amz-meta-*` headers; values are percent-encoded outside printable ASCII
    /// (and `%`, and a space at either end), since HTTP headers carry no reliable
    /// charset; `metadataValue` is the inverse.
    func metadataHeaders(_ metadata: [String: String]) -> [String: String] {
        var headers: [String: String] = [:]
        for (name, value) in metadata {
            var safe = ""
            let bytes = Array(value.utf8)
            for (index, byte) in bytes.enumerated() {
                // A space at either end would be dropped as the header's surrounding whitespace.
                let edgeSpace = byte == 0x20 && (index == 0 || index == bytes.count - 1)
                if byte >= 0x20, byte < 0x7f, byte != UInt8(ascii: "%"), !edgeSpace { safe.append(Character(UnicodeScalar(byte))) } else { safe += String(format: "%%%02X", byte) }
            }
            headers["x-amz-meta-\(name)"] = safe
        }
        return headers
    }

    /// A `x-amz-meta-*` value as it was meant: the inverse of `metadataHeaders`.
    /// A value that is not our encoding (no valid UTF-8 behind its escapes) stays as the store sent it.
    static func metadataValue(_ header: String) -> String {
        guard header.contains("%") else { return header }
        var bytes: [UInt8] = []
        var utf8 = header.utf8[...]
        while let byte = utf8.first {
            let digits = utf8.dropFirst().prefix(2)
            if byte == UInt8(ascii: "%"), digits.count == 2, digits.allSatisfy({ Character(UnicodeScalar($0)).isHexDigit }),
               let value = UInt8(String(decoding: digits, as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
                utf8 = utf8.dropFirst()
            }
        }
        return String(validating: bytes, as: UTF8.self) ?? header
    }
}

/// Just enough XML for S3's small answers: the text of the first element
/// with a given name, with entities decoded.
enum XMLText {
    static func first(_ element: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(element)>"),
              let close = xml.range(of: "</\(element)>", range: open.upperBound..<xml.endIndex) else { return nil }
        return decode(String(xml[open.upperBound..<close.lowerBound]))
    }

    /// Every element's text; `decoded: false` keeps nested markup as it is.
    static func all(_ element: String, in xml: String, decoded: Bool = true) -> [String] {
        var values: [String] = []
        var rest = xml[...]
        while let open = rest.range(of: "<\(element)>"), let close = rest.range(of: "</\(element)>", range: open.upperBound..<rest.endIndex) {
            let inner = String(rest[open.upperBound..<close.lowerBound])
            values.append(decoded ? decode(inner) : inner)
            rest = rest[close.upperBound...]
        }
        return values
    }

    static func decode(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                if entity.hasPrefix("#x"), let code = UInt32(entity.dropFirst(2), radix: 16), let scalar = UnicodeScalar(code) {
                    out.unicodeScalars.append(scalar)
                } else if entity.hasPrefix("#"), let code = UInt32(entity.dropFirst()), let scalar = UnicodeScalar(code) {
                    out.unicodeScalars.append(scalar)
                } else {
                    out += "&\(entity);"
                }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
