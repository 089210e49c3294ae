import Foundation
import Testing
import UplinkCore

@testable import UplinkPlugins

/// The sources' pure logic, without files or sleeps: globs, offset tracking, rotation decisions, checkpoints,
/// multi-line joining, back-off and long-line splitting.
@Suite struct SourceLogicTests {
    // MARK: Globs

    @Test(arguments: [
        ("/var/log/*.log", "/var/log/app.log", true),
        ("/var/log/*.log", "/var/log/app.log.1", false),
        ("/var/log/*.log", "/var/log/sub/app.log", false),
        ("/var/log/**/*.log", "/var/log/app.log", true),
        ("/var/log/**/*.log", "/var/log/a/b/c/app.log", true),
        ("/var/log/**/x/*.log", "/var/log/x/app.log", true),
        ("/var/log/**/x/*.log", "/var/log/a/x/app.log", true),
        ("/var/log/**/x/*.log", "/var/log/a/y/app.log", false),
        ("/var/log/app-?.log", "/var/log/app-1.log", true),
        ("/var/log/app-?.log", "/var/log/app-12.log", false),
        ("/var/log/app-[0-9].log", "/var/log/app-7.log", true),
        ("/var/log/app-[!0-9].log", "/var/log/app-7.log", false),
        ("/var/log/app-[!0-9].log", "/var/log/app-x.log", true),
        ("/var/log/*.{log,txt}", "/var/log/a.txt", true),
        ("/var/log/*.{log,txt}", "/var/log/a.gz", false),
        ("/var/log/{a,b}/*.log", "/var/log/b/z.log", true),
        ("/var/log/*a*b*", "/var/log/xxaxxbxx", true),
        ("/var/log/*a*b", "/var/log/xxaxxbxxc", false),
        ("/var/log/*", "/var/log/anything", true),
    ])
    func globMatching(pattern: String, path: String, expected: Bool) throws {
        #expect(try Glob(pattern).matches(path) == expected)
    }

    @Test func globErrorsAndBraces() throws {
        #expect(throws: Glob.Failure.self) { try Glob("/var/log/{a,b") }
        #expect(throws: Glob.Failure.self) { try Glob("/var/log/[ab") }
        #expect(throws: Glob.Failure.self) { try Glob("/var/log/**") }
        #expect(throws: Glob.Failure.self) { try Glob("/var/log/a**b/x") }
        #expect(try Glob.expandBraces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"])
        #expect(try Glob("*.gz").isNamePattern)
    }

    @Test func globExpandsOnDisk() throws {
        let root = sourceTemporaryDirectory("glob")
        for path in ["a.log", "b.log.1", "sub/c.log", "sub/deep/d.log", "sub/deep/e.gz", ".hidden/f.log"] {
            try FileManager.default.createDirectory(
                atPath: (root + "/" + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: root + "/" + path, contents: Data("x\n".utf8))
        }
        try FileManager.default.createSymbolicLink(atPath: root + "/loop", withDestinationPath: root)
        let filter = PathFilter(
            include: [try Glob(root + "/**/*.log")], exclude: [try Glob("d.*"), try Glob(root + "/.hidden/*")])
        let scan = filter.scan()
        #expect(scan.files == [root + "/a.log", root + "/sub/c.log"])
        #expect(scan.directories.contains(root + "/sub/deep"))
        let flat = PathFilter(include: [try Glob(root + "/*.log*")], exclude: []).scan()
        #expect(flat.files == [root + "/a.log", root + "/b.log.1"])
    }

    // MARK: Offsets and checkpoints

    @Test func offsetTrackerAdvancesOnlyOverContiguousDeliveries() {
        var tracker = OffsetTracker(committed: 100)
        let a = tracker.send(end: 200)
        let b = tracker.send(end: 300)
        let c = tracker.send(end: 400)
        var moved = tracker.finish(b, delivered: true)
        #expect(!moved)  // out of order: waits for a
        #expect(tracker.committed == 100)
        moved = tracker.finish(a, delivered: true)
        #expect(moved)
        #expect(tracker.committed == 300)
        moved = tracker.finish(c, delivered: true)
        #expect(moved)
        #expect(tracker.committed == 400)
        #expect(tracker.inFlight == 0)
        #expect(tracker.pending.isEmpty)
        moved = tracker.finish(c, delivered: true)
        #expect(!moved)  // a second answer changes nothing
    }

    @Test func offsetTrackerStallsOnAnUndeliveredRangeAndStaysSmall() {
        var tracker = OffsetTracker(committed: 0)
        let lost = tracker.send(end: 10)
        tracker.finish(lost, delivered: false)
        #expect(tracker.isStalled)
        for index in 1...2000 {
            let sequence = tracker.send(end: Int64(10 + index * 10))
            tracker.finish(sequence, delivered: true)
        }
        #expect(tracker.committed == 0)
        #expect(tracker.pending.count < 300)
        #expect(tracker.pending.last?.end == 20010)
    }

    @Test func offsetTrackerReportsChunksDeliveredBeyondTheOffsetAsRanges() {
        var tracker = OffsetTracker(committed: 100)
        let a = tracker.send(end: 200)
        let b = tracker.send(end: 300)
        let c = tracker.send(end: 400)
        let d = tracker.send(end: 500)
        tracker.skip(to: 550)
        let e = tracker.send(end: 600)
        tracker.finish(b, delivered: true)
        tracker.finish(d, delivered: true)
        tracker.finish(e, delivered: true)
        #expect(tracker.committed == 100)
        // d, the skipped bytes and e touch: one range.
        #expect(tracker.deliveredRanges(limit: 8).ranges == [200..<300, 400..<600])
        #expect(tracker.deliveredRanges(limit: 1) == ([200..<300], 1))
        tracker.finish(c, delivered: false)  // failed for good: sent again after a restart
        tracker.finish(a, delivered: true)
        #expect(tracker.committed == 300)
        #expect(tracker.deliveredRanges(limit: 8).ranges == [400..<600])
    }

    @Test func offsetTrackerKeepsCarriedRangesUntilTheReaderSkipsThem() {
        var tracker = OffsetTracker(committed: 100, carried: [200..<300, 400..<500])
        #expect(tracker.deliveredRanges(limit: 8).ranges == [200..<300, 400..<500])
        let resent = tracker.send(end: 200)
        tracker.skipCarried(200..<300)
        #expect(tracker.carried == [400..<500])
        #expect(tracker.committed == 100)
        #expect(tracker.deliveredRanges(limit: 8).ranges == [200..<300, 400..<500])
        tracker.finish(resent, delivered: true)
        #expect(tracker.committed == 300)
        tracker.skip(to: 400)
        tracker.skipCarried(400..<500)
        #expect(tracker.committed == 500)
        #expect(tracker.deliveredRanges(limit: 8).ranges.isEmpty)
        var dropped = OffsetTracker(committed: 0, carried: [10..<20])
        dropped.dropCarried()
        #expect(dropped.deliveredRanges(limit: 8).ranges.isEmpty)
    }

    /// A chunk whose acknowledgement `batch` cut: its parts come back one by one, out of order; the offset moves
    /// over delivered parts only, delivered parts after a pending one are ranges, a failed part stalls it.
    @Test func offsetTrackerRecordsThePartsOfACutChunk() {
        var tracker = OffsetTracker(committed: 100)
        let a = tracker.send(end: 400)
        let b = tracker.send(end: 500)
        // a is cut at 200 and 300: the last part first, then the first; the middle one is in flight.
        var moved = tracker.finish(a, part: 300..<400, delivered: true)
        #expect(!moved)
        #expect(tracker.inFlight == 2, "what is left of a (100..<300, one piece until a part cuts it), and b")
        #expect(tracker.deliveredRanges(limit: 8).ranges == [300..<400])
        moved = tracker.finish(a, part: 100..<200, delivered: true)
        #expect(moved)
        #expect(tracker.committed == 200)
        #expect(tracker.deliveredRanges(limit: 8).ranges == [300..<400])
        tracker.finish(b, delivered: true)
        #expect(tracker.deliveredRanges(limit: 8).ranges == [300..<500])
        moved = tracker.finish(a, part: 200..<300, delivered: true)
        #expect(moved)
        #expect(tracker.committed == 500)
        #expect(tracker.inFlight == 0 && tracker.pending.isEmpty)

        // A failed part: the offset stays before it, the parts after it are ranges.
        let c = tracker.send(end: 800)
        tracker.finish(c, part: 500..<600, delivered: true)
        tracker.finish(c, part: 600..<700, delivered: false)
        tracker.finish(c, part: 700..<800, delivered: true)
        #expect(tracker.committed == 600)
        #expect(tracker.isStalled)
        #expect(tracker.deliveredRanges(limit: 8).ranges == [700..<800])
        #expect(tracker.inFlight == 0)
        // A part answered twice changes nothing.
        moved = tracker.finish(c, part: 600..<700, delivered: true)
        #expect(!moved)
        #expect(tracker.committed == 600)
    }

    /// A cut chunk's parts through the book: each delivered part is written at once (a range, or the offset), and
    /// the final checkpoint waits for the chunk's last part.
    @Test func checkpointBookWritesEachDeliveredPartOfACutChunk() throws {
        let directory = sourceTemporaryDirectory("book-parts")
        let book = CheckpointBook(directory: directory, interval: .seconds(3600), logger: SourceHarness.logger)
        let id = book.create(identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/a", offset: 0)
        var token: Acknowledgement? = book.acknowledgement(for: id, start: 0, end: 900)
        var (first, rest): (Acknowledgement?, Acknowledgement?) = try #require(token?.split(at: 300))
        token = nil
        var (second, third): (Acknowledgement?, Acknowledgement?) = try #require(rest?.split(at: 600))
        #expect(second != nil)
        rest = nil
        func written() throws -> CheckpointEntry? {
            CheckpointSlots.decode(try [UInt8](Data(contentsOf: URL(fileURLWithPath: book.path)))).newest?.entries.first
        }
        third?.resolve(.delivered)
        third = nil
        #expect(try written()?.offset == 0)
        #expect(try written()?.delivered == [600..<900])
        first?.resolve(.delivered)
        first = nil
        #expect(try written()?.offset == 300)
        #expect(book.outstanding == 1, "the chunk still has a part in flight")
        book.stop()
        #expect(book.timeUntilDue() != nil, "no final checkpoint yet: written, not synced")
        second = nil
        // Dropped: the final checkpoint keeps it to be read again.
        #expect(book.outstanding == 0)
        #expect(try written()?.offset == 300)
        #expect(try written()?.delivered == [600..<900])
        #expect(book.timeUntilDue() == nil, "the final checkpoint is synced")
    }

    @Test func offsetTrackerSkipsBytesWithoutEvents() {
        var tracker = OffsetTracker(committed: 0)
        tracker.skip(to: 50)
        #expect(tracker.committed == 50)
        let a = tracker.send(end: 100)
        tracker.skip(to: 150)
        #expect(tracker.committed == 50)
        tracker.finish(a, delivered: true)
        #expect(tracker.committed == 150)
    }

    @Test func checkpointCodecRoundTrips() throws {
        let entries = [
            CheckpointEntry(
                identity: FileIdentity(device: 2049, inode: 1 << 40, fingerprint: .of(Array("hello\n".utf8))),
                path: "/var/log/\"quoted\" é.log", offset: 123_456_789_012),
            CheckpointEntry(
                identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/x", offset: 0, rotated: true),
        ]
        let bytes = CheckpointCodec.encode(entries)
        #expect(try CheckpointCodec.decode(bytes) == entries)
        #expect(throws: (any Error).self) { try CheckpointCodec.decode(Array("{\"version\":2,\"files\":[]}".utf8)) }
        #expect(throws: (any Error).self) { try CheckpointCodec.decode(Array("{\"version\":1,\"files\":[{}]}".utf8)) }
        #expect(throws: (any Error).self) { try CheckpointCodec.decode(Array("not json".utf8)) }
    }

    @Test func checkpointBookWritesTheFinalCheckpointAfterTheLastAcknowledgement() throws {
        let directory = sourceTemporaryDirectory("book")
        let book = CheckpointBook(directory: directory, interval: .seconds(60), logger: SourceHarness.logger)
        let path = book.path
        #expect(book.firstStart)
        let identity = FileIdentity(device: 1, inode: 2, fingerprint: .of([1, 2, 3]))
        let id = book.create(identity: identity, path: "/a.log", offset: 10)
        var first: Acknowledgement? = book.acknowledgement(for: id, end: 20)
        var second: Acknowledgement? = book.acknowledgement(for: id, end: 30)
        second?.resolve(.delivered)
        second = nil
        book.stop()
        // The final checkpoint waits for the first; meanwhile the second is written as a delivered range.
        let early = CheckpointSlots.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).newest?.entries
        #expect(early == [CheckpointEntry(identity: identity, path: "/a.log", offset: 10, delivered: [20..<30])])
        first?.resolve(.delivered)
        first = nil
        let written = CheckpointSlots.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).newest?.entries
        #expect(written == [CheckpointEntry(identity: identity, path: "/a.log", offset: 30)])
        let reopened = CheckpointBook(directory: directory, interval: .seconds(1), logger: SourceHarness.logger)
        #expect(!reopened.firstStart)
        #expect(reopened.dormantEntries().map(\.entry) == written ?? [])
    }

    @Test func checkpointBookDoesNotAdvanceForDroppedChunks() throws {
        let book = CheckpointBook(
            directory: sourceTemporaryDirectory("book"), interval: .seconds(60), logger: SourceHarness.logger)
        let path = book.path
        let id = book.create(identity: FileIdentity(device: 1, inode: 2, fingerprint: .empty), path: "/a", offset: 0)
        var token: Acknowledgement? = book.acknowledgement(for: id, end: 100)
        _ = token
        token = nil  // nobody resolved it: dropped
        #expect(book.committed(id) == 0)
        book.stop()
        let written = CheckpointSlots.decode(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).newest?.entries
        #expect(written?.first?.offset == 0)
    }

    // MARK: Rotation decisions

    @Test func tailPolicyDecisions() {
        #expect(TailPolicy.startOffset(size: 500, readFrom: .end, initialScan: true, firstStart: true) == 500)
        #expect(TailPolicy.startOffset(size: 500, readFrom: .end, initialScan: true, firstStart: false) == 0)
        #expect(TailPolicy.startOffset(size: 500, readFrom: .end, initialScan: false, firstStart: true) == 0)
        #expect(TailPolicy.startOffset(size: 500, readFrom: .beginning, initialScan: true, firstStart: true) == 0)

        #expect(TailPolicy.isTruncated(readOffset: 100, size: 50, fingerprintMatches: true))
        #expect(TailPolicy.isTruncated(readOffset: 100, size: 500, fingerprintMatches: false))
        #expect(!TailPolicy.isTruncated(readOffset: 100, size: 100, fingerprintMatches: true))

        let wait = Duration.seconds(5)
        #expect(TailPolicy.shouldRelease(atEnd: true, links: 0, draining: false, quietFor: .zero, rotateWait: wait))
        #expect(
            !TailPolicy.shouldRelease(atEnd: false, links: 0, draining: true, quietFor: .seconds(9), rotateWait: wait))
        #expect(
            !TailPolicy.shouldRelease(atEnd: true, links: 1, draining: true, quietFor: .seconds(1), rotateWait: wait))
        #expect(
            TailPolicy.shouldRelease(atEnd: true, links: 1, draining: true, quietFor: .seconds(5), rotateWait: wait))
        #expect(
            !TailPolicy.shouldRelease(atEnd: true, links: 1, draining: false, quietFor: .seconds(60), rotateWait: wait))

        #expect(
            TailPolicy.orphanAction(foundAt: "/l/a.log.1", recordedPath: "/l/a.log", rotated: false, size: 10, offset: 5)
                == .drain)
        #expect(
            TailPolicy.orphanAction(foundAt: "/l/a.log.1", recordedPath: "/l/a.log", rotated: false, size: 5, offset: 5)
                == .keep)
        #expect(
            TailPolicy.orphanAction(foundAt: "/l/a.log", recordedPath: "/l/a.log", rotated: false, size: 10, offset: 5)
                == .leave)
        // A copy being finished when the agent stopped is finished after the restart, even where it was.
        #expect(
            TailPolicy.orphanAction(foundAt: "/l/a.log.1", recordedPath: "/l/a.log.1", rotated: true, size: 10, offset: 5)
                == .drain)
    }

    @Test func fingerprintsCompareByContent() throws {
        let path = sourceTemporaryDirectory("fp") + "/f"
        append("hello world\n", to: path)
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let full = try #require(FileFingerprint.read(fd: fd, maxLength: 256))
        #expect(full.length == 12)
        #expect(full == .of(Array("hello world\n".utf8)))
        #expect(FileFingerprint.of(Array("hello".utf8)).matches(fd: fd))
        #expect(!FileFingerprint.of(Array("jello".utf8)).matches(fd: fd))
        #expect(!FileFingerprint.of(Array("hello world\nand more".utf8)).matches(fd: fd))
        #expect(FileFingerprint.empty.matches(fd: fd))
    }

    // MARK: Multi-line, back-off, framing

    @Test func multilineJoinsContinuationLines() {
        var aggregator = MultilineAggregator(maxLines: 3, maxBytes: 1000)
        let origin = EventOrigin(sourceID: "s")
        func line(_ text: String, _ offset: Int64) -> RawEvent {
            RawEvent(bytes: Array(text.utf8)[...], origin: origin, offset: offset, timestamp: 0)
        }
        var out: [RawEvent] = []
        aggregator.add(line("2024 error", 0), isStart: true, into: &out)
        aggregator.add(line("  at a", 11), isStart: false, into: &out)
        aggregator.add(line("  at b", 18), isStart: false, into: &out)
        #expect(aggregator.pendingStart == 0)
        aggregator.add(line("  at c", 25), isStart: false, into: &out)  // max_lines reached: a new event
        aggregator.add(line("2024 ok", 32), isStart: true, into: &out)
        aggregator.flush(into: &out)
        #expect(
            out.map { String(decoding: $0.bytes, as: UTF8.self) } == [
                "2024 error\n  at a\n  at b", "  at c", "2024 ok",
            ])
        #expect(out.map(\.offset) == [0, 25, 32])
        #expect(aggregator.isEmpty)

        var small = MultilineAggregator(maxLines: 10, maxBytes: 8)
        out = []
        small.add(line("start", 0), isStart: true, into: &out)
        small.add(line("more text", 6), isStart: false, into: &out)
        small.flush(into: &out)
        #expect(out.count == 1 && out[0].bytes.count == 8 && out[0].truncated)
    }

    @Test func backoffDoublesUpToTheMaximumAndResets() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1), resetAfter: .seconds(10))
        let delays = (0..<6).map { _ in backoff.next() }
        #expect(
            delays == [
                .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1),
                .seconds(1),
            ])
        #expect(backoff.next(healthyFor: .seconds(11)) == .milliseconds(100))
        backoff.reset()
        #expect(backoff.next() == .milliseconds(100))
    }

    @Test func longLinesAreSplitIntoFlaggedPieces() {
        func frames(_ chunks: [String], max: Int, mode: LineFramer.Mode = .newline) -> [(String, Int, Bool)] {
            var framer = LineFramer(mode: mode, maxFrameBytes: max, longFrames: .split)
            var result: [(String, Int, Bool)] = []
            var base = 0
            for chunk in chunks {
                let bytes = Array(chunk.utf8)
                framer.frames(in: bytes) {
                    result.append((String(decoding: $0.bytes, as: UTF8.self), base + $0.start, $0.truncated))
                }
                base += bytes.count
            }
            framer.flush { result.append((String(decoding: $0.bytes, as: UTF8.self), base + $0.start, $0.truncated)) }
            return result
        }
        let one = frames(["abcdefghij\nxy\n"], max: 4)
        #expect(one.map(\.0) == ["abcd", "efgh", "ij", "xy"])
        #expect(one.map(\.1) == [0, 4, 8, 11])
        #expect(one.map(\.2) == [true, true, true, false])
        // Across reads, with the pieces emitted before the newline arrives, and no empty last piece.
        let across = frames(["abcdef", "gh", "\r\nok\n"], max: 4)
        #expect(across.map(\.0) == ["abcd", "efgh", "ok"])
        #expect(across.map(\.1) == [0, 4, 10])
        #expect(across.map(\.2) == [true, true, false])
        let delimited = frames(["abcdefghij||x||"], max: 4, mode: .delimiter(Array("||".utf8)))
        #expect(delimited.map(\.0) == ["abcd", "efgh", "ij", "x"])
        // Truncation keeps the first bytes and discards the rest, counted.
        var truncating = LineFramer(mode: .newline, maxFrameBytes: 4)
        var kept: [String] = []
        truncating.frames(in: Array("abcdefghij\nxy\n".utf8)) { kept.append(String(decoding: $0.bytes, as: UTF8.self)) }
        #expect(kept == ["abcd", "xy"])
        #expect(truncating.discardedBytes == 6)
        // A frame that began in an earlier read keeps its true start offset, truncated or not, with CRLF.
        var carried = LineFramer(mode: .newline, maxFrameBytes: 4)
        var starts: [Int] = []
        carried.frames(in: Array("xy\nabc".utf8)) { starts.append($0.start) }
        carried.frames(in: Array("defghij\r\nk".utf8)) { starts.append(6 + $0.start) }
        carried.frames(in: Array("l\r\n".utf8)) { starts.append(16 + $0.start) }
        #expect(starts == [0, 3, 15])
    }

    @Test func delimiterEscapes() {
        #expect(FramingOptions.unescape("\\r\\n") == "\r\n")
        #expect(FramingOptions.unescape("\\0") == "\0")
        #expect(FramingOptions.unescape("||") == "||")
    }
}
