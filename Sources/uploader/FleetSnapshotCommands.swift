import Crypto
import Ledger
import UploaderCore

extension FleetCommand {
    /// What `fleet log` says first at a dock whose registry began at a snapshot.
    static func snapshotStartLine(_ start: FleetSnapshotRecord) -> String {
        DisplayText.terminalSafe("this dock's registry started from the fleet's snapshot at commit \(start.number), written by \(start.dock ?? "?") (key \(Ed25519PublicKey.grouped(start.signer ?? "?"))): commits 1 to \(start.number) are not listed here; any member dock lists them")
    }
}
