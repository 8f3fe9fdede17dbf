import Testing
@testable import Platform

@Suite struct FileNameTests {
    @Test(arguments: [
        [0x62, 0xFF, 0x64],                        // an invalid byte
        [0x63, 0x61, 0x66, 0xE9, 0x2E, 0x6D],      // Latin-1 "café.m"
        [0xEF, 0xBF, 0xBD, 0x41, 0x42],            // a literal U+FFFD followed by hex-looking letters
        [0x76, 0x69, 0x64, 0x2E, 0x6D, 0x70, 0x34], // plain ASCII
        [0xC3, 0xA9, 0xE2, 0x82],                  // valid é, then a truncated sequence
    ] as [[UInt8]])
    func aNameThatIsNotTextComesBackAsItsExactBytes(bytes: [UInt8]) {
        let shown = Syscall.displayName(bytes)
        #expect(Syscall.rawName(shown).dropLast().map { UInt8(bitPattern: $0) } == bytes)
    }

    @Test func twoNamesThatDifferOnlyInAnInvalidByteReadDifferently() {
        #expect(Syscall.displayName([0x62, 0xFF, 0x64]) != Syscall.displayName([0x62, 0xFE, 0x64]))
        #expect(Syscall.displayName([0x62, 0xFF, 0x64]) == "b\u{FFFD}FFd")
    }
}
