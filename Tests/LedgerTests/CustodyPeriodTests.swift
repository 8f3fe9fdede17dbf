import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

@Suite struct CustodyPeriodTests {
    @Test func overlappingPeriodsAreRefusedAndAnOpenOneIsHandedOver() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "POOL-1", defaultUser: "pool", name: nil, model: nil)
        let t = Date(timeIntervalSince1970: 1_795_000_000)
        _ = try ledger.assign(serial: "POOL-1", user: "officer-1", from: t, until: t + 3600)
        let same = #expect(throws: UploaderError.self) {
            try ledger.assign(serial: "POOL-1", user: "officer-2", from: t, until: t + 3600)
        }
        #expect(same?.message.contains("overlaps custody period") == true)
        #expect(throws: UploaderError.self) { try ledger.assign(serial: "POOL-1", user: "officer-2", from: t + 1800, until: t + 7200) }
        // An open period is a hand-over: the earlier holder's period ends, and the log says so.
        _ = try ledger.assign(serial: "POOL-1", user: "officer-2", from: t + 3600, until: nil)
        let handover = try ledger.assign(serial: "POOL-1", user: "officer-3", from: t + 7200, until: nil)
        #expect(handover.endedPeriod?.user == "officer-2")
        #expect(try ledger.custody(serial: "POOL-1").map(\.user) == ["officer-1", "officer-2", "officer-3"])
        #expect(try ledger.events(EventFilter()).contains { $0.kind == .deviceUnassigned })
    }

    @Test func emptyOrControlCharacterNamesAreRefused() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        #expect(throws: UploaderError.self) { try ledger.addDevice(serial: "", defaultUser: "u", name: nil, model: nil) }
        #expect(throws: UploaderError.self) { try ledger.addDevice(serial: "S1", defaultUser: "bad\u{1b}[2J", name: nil, model: nil) }
        try ledger.addDevice(serial: "S1", defaultUser: "u", name: nil, model: nil)
        #expect(throws: UploaderError.self) { try ledger.assign(serial: "S1", user: "", from: Date(), until: nil) }
        #expect(throws: UploaderError.self) { try ledger.assign(serial: "S1", user: " x", from: Date(), until: nil) }
    }
}
