import Foundation
import Testing
import UplinkCore
import UplinkFileSystem

@testable import UplinkPlugins

/// The tail's checkpoint file: the two-slot codec with torn and corrupted slots, and the book that writes it in
/// place (promptly after acknowledgements, synced on the interval, migrating the first format once).
@Suite struct CheckpointSlotsTests {
    static let entries = [
        CheckpointEntry(
            identity: FileIdentity(device: 2049, inode: 1 << 40, fingerprint: .of(Array("hello\n".utf8))),
            path: "/var/log/\"quoted\" é.log", offset: 123_456_789_012),
        CheckpointEntry(
            identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/x", offset: 0, rotated: true),
    ]

    static func entry(offset: Int64) -> CheckpointEntry {
        CheckpointEntry(
            identity: FileIdentity(device: 7, inode: 8, fingerprint: .of([1, 2, 3])), path: "/a.log", offset: offset)
    }

    /// A file whose slot 0 holds offset 100 (sequence 1) and slot 1 offset 200 (sequence 2).
    static func twoSlotFile() throws -> [UInt8] {
        let capacity = CheckpointSlots.minimumCapacity
        var file = try #require(CheckpointSlots.encodeFile([entry(offset: 100)], sequence: 1, capacity: capacity))
        let second = try #require(CheckpointSlots.encodeSlot([entry(offset: 200)], sequence: 2, capacity: capacity))
        file.replaceSubrange(capacity..<(capacity + second.count), with: second)
        return file
    }

    // MARK: Codec

    @Test func aSlotRoundTrips() throws {
        let file = try #require(CheckpointSlots.encodeFile(Self.entries, sequence: 42, capacity: 4096))
        #expect(file.count == 8192)
        let recovery = CheckpointSlots.decode(file)
        #expect(recovery.newest == CheckpointSlots.Slot(index: 0, sequence: 42, entries: Self.entries))
        #expect(recovery.damagedSlots == 0)
        #expect(recovery.capacity == 4096)
    }

    @Test func theHighestSequenceWinsWhicheverSlotHoldsIt() throws {
        var file = try Self.twoSlotFile()
        #expect(CheckpointSlots.decode(file).newest?.entries == [Self.entry(offset: 200)])
        let third = try #require(CheckpointSlots.encodeSlot([Self.entry(offset: 300)], sequence: 3, capacity: 4096))
        file.replaceSubrange(0..<third.count, with: third)
        let recovery = CheckpointSlots.decode(file)
        #expect(recovery.newest?.index == 0)
        #expect(recovery.newest?.entries == [Self.entry(offset: 300)])
    }

    @Test(arguments: [0, 10, 16, 27, 28, 40])
    func aTornSlotFallsBackToTheOther(keptBytes: Int) throws {
        var file = try Self.twoSlotFile()
        // The newer slot was being overwritten when the power went: only its first bytes reached the disk.
        let newer = try #require(CheckpointSlots.encodeSlot([Self.entry(offset: 300)], sequence: 3, capacity: 4096))
        let oldSlot = Array(file[0..<newer.count])
        file.replaceSubrange(0..<newer.count, with: Array(newer.prefix(keptBytes)) + oldSlot.dropFirst(keptBytes))
        let recovery = CheckpointSlots.decode(file)
        #expect(recovery.newest?.entries == [Self.entry(offset: 200)])
        // Its first 12 bytes (magic, format, capacity) are the same as before.
        #expect(recovery.damagedSlots == (keptBytes <= 12 ? 0 : 1))
    }

    @Test func everyFlippedByteOfTheNewestSlotFallsBackToTheOther() throws {
        let file = try Self.twoSlotFile()
        let newest = try #require(CheckpointSlots.encodeSlot([Self.entry(offset: 200)], sequence: 2, capacity: 4096))
        for position in 0..<newest.count {
            var damaged = file
            damaged[4096 + position] ^= 0x5A
            let recovery = CheckpointSlots.decode(damaged)
            #expect(recovery.newest?.entries == [Self.entry(offset: 100)], "flipped byte \(position)")
            #expect(recovery.damagedSlots == 1, "flipped byte \(position)")
        }
    }

    @Test func twoDamagedSlotsRecoverNothingAndSaySo() throws {
        var file = try Self.twoSlotFile()
        file[30] ^= 1
        file[4096 + 30] ^= 1
        let recovery = CheckpointSlots.decode(file)
        #expect(recovery.newest == nil)
        #expect(recovery.damagedSlots == 2)
    }

    @Test(arguments: [0, 1, 7, 55, 4097, 8190, 8191])
    func anyLengthOfBytesDecodesWithoutTrapping(length: Int) throws {
        let file = try Self.twoSlotFile()
        let cut = Array(file.prefix(length))
        let recovery = CheckpointSlots.decode(cut)
        #expect(recovery.newest == nil)
        var garbage = SystemRandomNumberGenerator()
        let noise = (0..<length).map { _ in UInt8.random(in: 0...255, using: &garbage) }
        #expect(CheckpointSlots.decode(noise).newest == nil)
    }

    @Test func aPayloadThatClaimsMoreEntriesThanItHoldsIsDamage() throws {
        var payload = BinaryWriter()
        payload.varint(1 << 40)
        #expect(throws: CheckpointSlots.Damage.self) { try CheckpointSlots.decodePayload(payload.bytes[...]) }
    }

    // MARK: Format 3: delivered ranges

    static let withRanges = [
        CheckpointEntry(
            identity: FileIdentity(device: 2049, inode: 1 << 40, fingerprint: .of(Array("hello\n".utf8))),
            path: "/var/log/app.log", offset: 1_000, delivered: [1_000..<1_500, 2_000..<2_001, 5_000_000_000..<6_000_000_000]),
        CheckpointEntry(
            identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/x", offset: 0, rotated: true),
    ]

    @Test func formatThreeRoundTripsDeliveredRanges() throws {
        let file = try #require(CheckpointSlots.encodeFile(Self.withRanges, sequence: 9, capacity: 4096))
        #expect(file[4] == 3)
        #expect(CheckpointSlots.decode(file).newest?.entries == Self.withRanges)
        // Per range: the gap since the previous end and the length, as varints.
        let payload = CheckpointSlots.encodePayload([Self.entry(offset: 10)].map {
            var entry = $0
            entry.delivered = [20..<30, 31..<40]
            return entry
        })
        #expect(Array(payload.suffix(5)) == [2, 10, 10, 1, 9])
    }

    /// A slot as the previous release (format 2) wrote it: the same payload without the ranges.
    static func formatTwoFile(_ entry: CheckpointEntry, sequence: UInt64) throws -> [UInt8] {
        var payload = CheckpointSlots.encodePayload([entry])
        #expect(payload.last == 0, "no ranges: the format-3 payload ends with their count, 0")
        payload.removeLast()
        var slot = Array("UPCK".utf8) + [2, 0, 0, 0]
        slot += [0x00, 0x10, 0, 0]  // capacity 4096
        slot += (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (8 * UInt64($0))) }
        slot += (0..<4).map { UInt8(truncatingIfNeeded: payload.count >> (8 * $0)) }
        let crc = CRC32.checksum(slot + payload)
        slot += (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * UInt32($0))) }
        slot += payload
        return slot + [UInt8](repeating: 0, count: 8192 - slot.count)
    }

    @Test func aFormatTwoFileStillLoadsAndTheNextWriteIsFormatThree() throws {
        let file = try Self.formatTwoFile(Self.entries[0], sequence: 5)
        #expect(CheckpointSlots.decode(file).newest == CheckpointSlots.Slot(index: 0, sequence: 5, entries: [Self.entries[0]]))
        let directory = sourceTemporaryDirectory("book")
        try Data(file).write(to: URL(fileURLWithPath: directory + "/checkpoints.slots"))
        let book = CheckpointBook(directory: directory, interval: .seconds(1), logger: SourceHarness.logger)
        #expect(!book.firstStart)
        #expect(book.dormantEntries().map(\.entry) == [Self.entries[0]])
        book.skip(book.dormantEntries()[0].id, to: 123_456_789_100)
        book.write(final: true)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path)))
        let newest = try #require(CheckpointSlots.decode(bytes).newest)
        #expect(newest.sequence == 6 && bytes[newest.index * 4096 + 4] == 3)
        #expect(newest.entries.first?.offset == 123_456_789_100)
    }

    @Test(arguments: [
        // count, then (gap, length) pairs after offset 10
        [1, 0, 0],  // an empty range
        [2, 0, 5, 0, 5],  // a second range touching the first
        [1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1],  // a gap past Int64.max
        [1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],  // a length past Int64.max
        [65] + [UInt8](repeating: 1, count: 130),  // more ranges than a file may record
        [2, 1, 1],  // fewer ranges than announced
    ] as [[UInt8]])
    func malformedRangesAreDamage(ranges: [UInt8]) throws {
        var payload = CheckpointSlots.encodePayload([Self.entry(offset: 10)])
        payload.removeLast()
        payload += ranges
        #expect(throws: (any Error).self) { try CheckpointSlots.decodePayload(payload[...]) }
        // Format 2 has no ranges: the same bytes are trailing garbage there.
        #expect(throws: (any Error).self) { try CheckpointSlots.decodePayload(payload[...], format: 2) }
    }

    @Test func rangesTheFormatCannotHoldAreLeftOutNotWritten() throws {
        var entry = Self.entry(offset: 100)
        entry.delivered = [50..<60, 100..<110, 105..<120, 110..<111, 130..<130, 140..<150]
        #expect(CheckpointSlots.encodableRanges(entry) == [100..<110, 140..<150])
        entry.delivered = (0..<100).map { (index: Int) -> Range<Int64> in
            let start = Int64(200 + index * 10)
            return start..<(start + 5)
        }
        #expect(CheckpointSlots.encodableRanges(entry) == Array(entry.delivered.prefix(CheckpointSlots.maximumRanges)))
        let decoded = try CheckpointSlots.decodePayload(CheckpointSlots.encodePayload([entry])[...])
        #expect(decoded.first?.delivered.count == CheckpointSlots.maximumRanges)
    }

    /// The fuzzer's seeds (Fuzz/Corpus/checkpoint) were written by a separate encoder (a Python script following
    /// the layout above), so they also check the decoder against what it did not write.
    @Test func theFuzzSeedsDecodeAsTheirIndependentEncoderWroteThem() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus/checkpoint")
        func bytes(_ name: String) throws -> [UInt8] { try [UInt8](Data(contentsOf: corpus.appendingPathComponent(name))) }
        let format3 = try #require(CheckpointSlots.decode(try bytes("slots-format3")).newest)
        #expect(format3.sequence == 7)
        #expect(format3.entries.map(\.path) == ["/var/log/app.log", "/var/log/app.log.1"])
        #expect(format3.entries.first?.offset == 4096)
        #expect(format3.entries.first?.delivered == [4096..<8192, 9000..<9500, 20000..<65536])
        #expect(format3.entries.last?.rotated == true && format3.entries.last?.delivered == [])
        let format2 = try #require(CheckpointSlots.decode(try bytes("slots-format2")).newest)
        #expect(format2.entries.map(\.offset) == [4096, 0] && format2.entries.allSatisfy(\.delivered.isEmpty))
        let upgraded = CheckpointSlots.decode(try bytes("slots-upgraded"))
        #expect(upgraded.newest?.index == 1 && upgraded.newest?.entries == format3.entries && upgraded.damagedSlots == 0)
        let ranges = try CheckpointSlots.decodePayload(try bytes("payload-format3-maxranges")[...])
        #expect(ranges.first?.delivered.count == CheckpointSlots.maximumRanges)
    }

    @Test func manyFilesGrowTheSlotsToAPowerOfTwo() throws {
        let many = (0..<200).map { index in
            CheckpointEntry(
                identity: FileIdentity(device: 1, inode: UInt64(index), fingerprint: .empty),
                path: "/var/log/app/" + String(repeating: "x", count: 40) + "-\(index).log", offset: Int64(index))
        }
        let capacity = CheckpointSlots.capacity(for: many)
        #expect(capacity > 4096 && capacity.nonzeroBitCount == 1)
        #expect(CheckpointSlots.encodeSlot(many, sequence: 1, capacity: 4096) == nil)
        let file = try #require(CheckpointSlots.encodeFile(many, sequence: 1, capacity: capacity))
        #expect(CheckpointSlots.decode(file).newest?.entries == many)
    }

    // MARK: The slot file

    @Test func writesBetweenSyncsGoToOneSlotAndNeverTouchTheSyncedOne() throws {
        let path = sourceTemporaryDirectory("slots") + "/checkpoints.slots"
        let file = CheckpointSlotFile(path: path)
        #expect(try file.load() == nil)
        try file.write([Self.entry(offset: 1)])  // creates the file: on disk at once
        #expect(!file.needsSync)
        let created = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        try file.write([Self.entry(offset: 2)])
        try file.write([Self.entry(offset: 3)])
        #expect(file.needsSync)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes[0..<4096] == created[0..<4096], "the synced slot is untouched")
        #expect(CheckpointSlots.decode(bytes).newest?.entries == [Self.entry(offset: 3)])
        try file.sync()
        #expect(!file.needsSync)
        try file.write([Self.entry(offset: 4)])
        bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(CheckpointSlots.decode(bytes).newest == CheckpointSlots.Slot(index: 0, sequence: 4, entries: [Self.entry(offset: 4)]))
        #expect(CheckpointSlots.decode(Array(bytes[0..<4096]) + Array(repeating: 0, count: 4096)).newest?.sequence == 4)
        // Reopened (after a kill): the newest checkpoint is read, synced, and writing goes to the other slot.
        let reopened = CheckpointSlotFile(path: path)
        #expect(try reopened.load()?.newest?.entries == [Self.entry(offset: 4)])
        try reopened.write([Self.entry(offset: 5)])
        bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(CheckpointSlots.decode(bytes).newest?.index == 1)
        #expect(CheckpointSlots.decode(Array(bytes[0..<4096]) + Array(repeating: 0, count: 4096)).newest?.sequence == 4)
    }

    // MARK: The book

    @Test func anAcknowledgementWritesTheCheckpointAtOnceAndTheIntervalSyncsIt() throws {
        let directory = sourceTemporaryDirectory("book")
        let book = CheckpointBook(directory: directory, interval: .seconds(3600), logger: SourceHarness.logger)
        let identity = FileIdentity(device: 1, inode: 2, fingerprint: .of([1, 2, 3]))
        let id = book.create(identity: identity, path: "/a.log", offset: 0)
        book.write(final: false)
        var token: Acknowledgement? = book.acknowledgement(for: id, end: 500)
        token?.resolve(.delivered)
        token = nil
        // A process killed now leaves this in the page cache: the restart resumes at 500.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path)))
        #expect(CheckpointSlots.decode(bytes).newest?.entries.first?.offset == 500)
        #expect(book.timeUntilDue() != nil, "written, waiting for the interval's sync")
        book.sync()
        #expect(book.timeUntilDue() == nil)
        // Nothing changed: nothing is written.
        book.writeIfDue()
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path))) == bytes)
    }

    @Test func chunksAcknowledgedOutOfOrderAreWrittenAsRangesAndCarriedIntoTheNextRun() throws {
        let directory = sourceTemporaryDirectory("book")
        let metrics = ComponentMetrics()
        let book = CheckpointBook(directory: directory, interval: .seconds(3600), logger: SourceHarness.logger, metrics: metrics)
        let identity = FileIdentity(device: 1, inode: 2, fingerprint: .of([1, 2, 3]))
        let id = book.create(identity: identity, path: "/a.log", offset: 0)
        var tokens: [Acknowledgement?] = (1...5).map { book.acknowledgement(for: id, end: Int64($0 * 100)) }
        // The first waits for a retry; 2, 3 and 5 are delivered; 4 is still in flight when the process is killed.
        for index in [1, 2, 4] {
            tokens[index]?.resolve(.delivered)
            tokens[index] = nil
        }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path)))
        let written = try #require(CheckpointSlots.decode(bytes).newest?.entries.first)
        #expect(written.offset == 0)
        #expect(written.delivered == [100..<300, 400..<500])
        _ = tokens

        let reopened = CheckpointBook(directory: directory, interval: .seconds(1), logger: SourceHarness.logger)
        let (carriedID, entry) = try #require(reopened.dormantEntries().first)
        #expect(entry.delivered == [100..<300, 400..<500])
        // A file shorter than a range is not the content the ranges describe: they are forgotten.
        #expect(reopened.carriedRanges(carriedID, fileSize: 499) == [])
        #expect(reopened.dormantEntries().first?.entry.delivered == [])
        #expect(metrics.snapshot.errors == 0)
    }

    @Test func theReaderSkippingCarriedRangesKeepsTheRestUntilReached() throws {
        let directory = sourceTemporaryDirectory("book")
        let first = CheckpointBook(directory: directory, interval: .seconds(1), logger: SourceHarness.logger)
        let id = first.create(identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/a", offset: 0)
        var tokens: [Acknowledgement?] = (1...4).map { first.acknowledgement(for: id, end: Int64($0 * 100)) }
        tokens[1]?.resolve(.delivered)
        tokens[3]?.resolve(.delivered)
        tokens = []
        first.stop()
        let book = CheckpointBook(directory: directory, interval: .seconds(1), logger: SourceHarness.logger)
        let carriedID = try #require(book.dormantEntries().first?.id)
        book.revive(carriedID, identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/a", rotated: false)
        #expect(book.carriedRanges(carriedID, fileSize: 400) == [100..<200, 300..<400])
        // Run 2 sends 0..<100 again, skips 100..<200, sends 200..<300 (both still in flight): the checkpoint keeps
        // the skipped range and the one not reached yet.
        var resent: Acknowledgement? = book.acknowledgement(for: carriedID, end: 100)
        book.skipCarried(carriedID, 100..<200)
        var more: Acknowledgement? = book.acknowledgement(for: carriedID, end: 300)
        book.write(final: false)
        var entry = CheckpointSlots.decode(try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path)))).newest?.entries.first
        #expect(entry?.offset == 0 && entry?.delivered == [100..<200, 300..<400])
        resent?.resolve(.delivered)
        resent = nil
        more?.resolve(.delivered)
        more = nil
        book.skipCarried(carriedID, 300..<400)
        book.write(final: false)
        entry = CheckpointSlots.decode(try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path)))).newest?.entries.first
        #expect(entry?.offset == 400 && entry?.delivered == [])
    }

    @Test func moreGapsThanTheFormatHoldsKeepTheFirstRangesAndAreCounted() throws {
        let metrics = ComponentMetrics()
        let book = CheckpointBook(
            directory: sourceTemporaryDirectory("book"), interval: .seconds(3600), logger: SourceHarness.logger,
            metrics: metrics)
        let id = book.create(identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/a", offset: 0)
        var held: [Acknowledgement] = []
        for index in 0..<(2 * CheckpointSlots.maximumRanges + 4) {
            let token = book.acknowledgement(for: id, end: Int64(index + 1) * 10)
            // Every other chunk stays in flight: each delivered one is a range of its own.
            if index % 2 == 0 { held.append(token) } else { token.resolve(.delivered) }
        }
        book.write(final: false)
        let entry = CheckpointSlots.decode(try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path)))).newest?.entries.first
        #expect(entry?.delivered.count == CheckpointSlots.maximumRanges)
        #expect(entry?.delivered.first == 10..<20)
        let omitted = metrics.report().samples.first { $0.name == "uplink_file_checkpoint_ranges_omitted_total" }
        #expect(omitted != nil)
        if case .counter(let value)? = omitted?.value { #expect(value >= 1) } else { Issue.record("not a counter") }
        _ = held
    }

    @Test func theFirstFormatIsReadOnceAndReplaced() throws {
        let directory = sourceTemporaryDirectory("book")
        let legacy = directory + "/checkpoints.json"
        try Data(CheckpointCodec.encode(Self.entries)).write(to: URL(fileURLWithPath: legacy))
        let book = CheckpointBook(directory: directory, interval: .seconds(1), logger: SourceHarness.logger)
        #expect(!book.firstStart)
        #expect(book.dormantEntries().map(\.entry) == Self.entries)
        book.writeIfDue()
        #expect(!FileManager.default.fileExists(atPath: legacy))
        let reopened = CheckpointBook(directory: directory, interval: .seconds(1), logger: SourceHarness.logger)
        #expect(!reopened.firstStart)
        #expect(reopened.dormantEntries().map(\.entry) == Self.entries)
    }

    @Test func aFailedWriteIsCountedKeptPendingAndRetriedAfterTheInterval() throws {
        let directory = sourceTemporaryDirectory("book") + "/state"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let metrics = ComponentMetrics()
        let book = CheckpointBook(
            directory: directory, interval: .milliseconds(20), logger: SourceHarness.logger, metrics: metrics)
        let id = book.create(identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/a", offset: 0)
        // The state directory disappears (an unmounted card): the write fails, visibly, and is not forgotten.
        try FileManager.default.removeItem(atPath: directory)
        book.writeIfDue()
        #expect(metrics.snapshot.errors == 1)
        #expect(!FileManager.default.fileExists(atPath: book.path))
        var token: Acknowledgement? = book.acknowledgement(for: id, end: 100)
        token?.resolve(.delivered)
        token = nil
        #expect(metrics.snapshot.errors == 1, "while backing off, acknowledgements do not hammer a failing disk")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: book.path), ContinuousClock.now < deadline {
            if let due = book.timeUntilDue() { Thread.sleep(forTimeInterval: Double(due.components.attoseconds) / 1e18) }
            book.writeIfDue()
        }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path)))
        #expect(CheckpointSlots.decode(bytes).newest?.entries.first?.offset == 100)
    }

    @Test func failuresAreLoggedOnceAMinuteWithHowManyThereWere() {
        var report = CheckpointBook.FailureReport()
        let start = ContinuousClock.now
        #expect(report.record(now: start) == 1)
        #expect(report.record(now: start + .seconds(1)) == nil)
        #expect(report.record(now: start + .seconds(59)) == nil)
        #expect(report.record(now: start + .seconds(60)) == 3)
        #expect(report.record(now: start + .seconds(61)) == nil)
    }
}
