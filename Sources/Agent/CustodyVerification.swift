import Foundation
import Ledger
import Transport
import UploaderCore

/// `uploader verify`: the custody log's chain, then each selected file against
/// everything that vouches for it (`CustodyVerifier`), then the signed
/// checkpoints, here and in the store. The command only prints what this finds.
public struct CustodyVerification: Sendable {
    public var files = 0
    public var ok = 0
    public var wrong = 0
    /// Objects whose store could not be reached: not "ok", and not wrong either.
    public var unchecked = 0
    public var chain: ChainVerification
    public var checkpoints = CheckpointVerdict()
    /// Why the store was not checked, or how many of its objects were not; nil
    /// when it was asked about every object (or, `offline`, about none).
    public var storeNote: String?
    public var offline: Bool

    /// Something is wrong with the evidence or its record.
    public var broken: Bool { !chain.intact || wrong > 0 || !checkpoints.problems.isEmpty }

    /// How the check ends: 4 when something is wrong, else 1 when objects could
    /// not be checked (an unreachable store proves nothing), else 0.
    public var exitStatus: ExitStatus {
        if broken { return .evidenceProblem }
        return unchecked > 0 ? .failure : .success
    }

    /// Checks the files `selection` names, telling `each` every file's verdict as
    /// it is found. `offline`: the store is not asked at all. Blocking.
    public static func run(configuration: Configuration, ledger: Ledger, selection: VerifySelection, offline: Bool,
                           each: (FileVerdict) throws -> Void) throws -> CustodyVerification {
        var result = CustodyVerification(chain: try ledger.verifyChain(), offline: offline)
        var store: S3Client?
        if !offline {
            do {
                store = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
            } catch let error as UploaderError {
                result.storeNote = "the store is not checked: \(error.message)"
            }
        }
        let verifier = CustodyVerifier(configuration: configuration, rules: ObjectRules(configuration: configuration, ledger: ledger))
        try ledger.forEachFileRecord(selection) { record in
            let verdict = verifier.check(record, store: store)
            result.files += 1
            if verdict.storeUnreachable { result.unchecked += 1 }
            if verdict.ok { result.ok += 1 } else { result.wrong += 1 }
            try each(verdict)
        }
        result.checkpoints = verifier.checkCheckpoints(ledger: ledger, store: store)
        if result.unchecked > 0 {
            result.storeNote = "\(result.unchecked) objects NOT checked: the store could not be reached (see `uploader store check`; --offline checks the rest only)"
        }
        return result
    }

    /// The last line of `verify --json`.
    public var summary: Summary {
        Summary(files: files, ok: ok, wrong: wrong, chainIntact: chain.intact, chainEvents: chain.events,
                chainProblem: chain.problem, checkpoints: checkpoints,
                store: storeNote ?? (offline ? "not checked (--offline)" : "checked"))
    }

    public struct Summary: Encodable, Sendable {
        public var files: Int
        public var ok: Int
        public var wrong: Int
        public var chainIntact: Bool
        public var chainEvents: Int
        public var chainProblem: String?
        public var checkpoints: CheckpointVerdict
        public var store: String
    }
}
