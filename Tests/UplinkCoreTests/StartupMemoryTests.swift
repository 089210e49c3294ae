import Testing
import UplinkCore

#if canImport(Glibc)
import Glibc
#endif

/// A value in a writable segment (.data): the release must leave what the process wrote there alone.
nonisolated(unsafe) private var writtenAfterStart = 0x5A5A_5A5A

private func statusKiB(_ key: String) -> Int {
    let text = (try? FileIO.readFile("/proc/self/status", limit: 1 << 16)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }
    return -1
}

@Suite struct StartupMemoryTests {
    @Test func releaseUnmapsReadOnlyPagesAndKeepsWrittenData() throws {
        writtenAfterStart = 0x1234_5678
        let heapBytes = [UInt8](repeating: 7, count: 3 * 4096)
        let fileBefore = statusKiB("RssFile")
        #expect(fileBefore > 0)

        let released = try #require(StartupMemory.release())

        let fileAfter = statusKiB("RssFile")
        // The test process maps several MiB of code (its own, the Swift runtime, libc); most of it goes.
        #expect(released > 1 << 20)
        #expect(fileAfter < fileBefore - 1024, "RssFile \(fileBefore) KiB -> \(fileAfter) KiB")
        // Data written before the release is intact, and code and constants fault back in correctly.
        #expect(writtenAfterStart == 0x1234_5678)
        #expect(heapBytes.allSatisfy { $0 == 7 })
        #expect(String(decoding: "uplink startup memory".utf8.reversed().reversed(), as: UTF8.self) == "uplink startup memory")
        #expect((1...1000).reduce(0, +) == 500_500)
    }
}
