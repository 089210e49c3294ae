import Foundation
import Synchronization
import Testing
import UplinkCore

@testable import UplinkPlugins
import UplinkTestSupport

/// The `file` source on real files: tailing, checkpoints and restarts, rotation while lines are written.
@Suite(.serialized, .timeLimit(.minutes(1))) struct FileSourceTests {
    func fileSource(_ options: String) throws -> FileTailSource {
        try #require(try buildSource("{ type: file, \(options) }") as? FileTailSource)
    }

    /// Lines `prefix-<n>` counted: every one exactly once, in order.
    func expectEachOnce(
        _ lines: [String], prefix: String, count: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var seen = [Int](repeating: 0, count: count)
        for line in lines {
            guard line.hasPrefix(prefix + "-"), let number = Int(line.dropFirst(prefix.count + 1)), number < count
            else {
                Issue.record("unexpected line '\(line)'", sourceLocation: sourceLocation)
                continue
            }
            seen[number] += 1
        }
        let missing = seen.indices.filter { seen[$0] == 0 }
        let twice = seen.indices.filter { seen[$0] > 1 }
        #expect(missing.isEmpty, "missing \(missing.count): \(missing.prefix(10))", sourceLocation: sourceLocation)
        #expect(twice.isEmpty, "delivered twice \(twice.count): \(twice.prefix(10))", sourceLocation: sourceLocation)
    }

    /// Appends a marker line to `path` and waits for it, then returns what arrived without it: the tail reads a
    /// file in order, so whatever it would deliver before the marker (a line read twice after a restart or a
    /// rotation) has arrived by then; no fixed wait for "anything extra".
    func linesUpToAMarker(
        _ harness: SourceHarness, appendingTo path: String, sourceLocation: SourceLocation = #_sourceLocation
    ) async -> [String] {
        append("marker\n", to: path)
        let arrived = await waitUntil(timeout: .seconds(15)) { harness.lines.contains("marker") }
        #expect(arrived, "the marker line arrives", sourceLocation: sourceLocation)
        return harness.lines.filter { $0 != "marker" }
    }

    @Test func tailsLinesWithOffsetsAndPathAndKeepsInvalidUTF8() async throws {
        let directory = sourceTemporaryDirectory("tail")
        let path = directory + "/app.log"
        append("first\nsecond\n", to: path)
        let harness = SourceHarness()
        harness.start(try fileSource("include: [\(directory)/*.log]"))
        #expect(await harness.waitFor(count: 2))
        append([0x62, 0xFF, 0xFE, 0x0A] + Array("crlf\r\n".utf8), to: path)
        #expect(await harness.waitFor(count: 4))
        await harness.stop()
        let events = harness.events
        #expect(
            events.map(\.bytes) == [Array("first".utf8), Array("second".utf8), [0x62, 0xFF, 0xFE], Array("crlf".utf8)])
        #expect(events.map(\.offset) == [0, 6, 13, 17])
        #expect(events.allSatisfy { $0.location == path })
        #expect(harness.metrics.snapshot.sentEvents == 4)
    }

    @Test func restartResumesFromTheCheckpointOfDeliveredLines() async throws {
        let directory = sourceTemporaryDirectory("restart")
        let path = directory + "/app.log"
        for index in 0..<100 { append("r-\(index)\n", to: path) }
        let state = sourceTemporaryDirectory("state")
        let log = FileSourceUnreadableTests.RecordedLog()
        let first = SourceHarness(dataDirectory: state, logger: log.logger)
        first.start(try fileSource("include: [\(directory)/*.log], read_from: end"))
        // read_from: end at the first start: the existing lines are skipped, once the tail has its starting offset.
        #expect(await waitUntil { !log.messages("tailing file").isEmpty })
        for index in 100..<200 { append("r-\(index)\n", to: path) }
        #expect(await first.waitFor(count: 100))
        await first.stop()
        #expect(first.lines.first == "r-100")
        for index in 200..<300 { append("r-\(index)\n", to: path) }
        // A restart resumes where the delivered lines end, whatever read_from says.
        let second = SourceHarness(dataDirectory: state)
        second.start(try fileSource("include: [\(directory)/*.log], read_from: end"))
        #expect(await second.waitFor(count: 100))
        let secondLines = await linesUpToAMarker(second, appendingTo: path)
        await second.stop()
        #expect(first.lines.count + secondLines.count == 200)
        #expect(Set(first.lines + secondLines).count == 200)
        #expect(secondLines.first == "r-200")
    }

    @Test func unacknowledgedLinesAreReadAgainAfterARestart() async throws {
        let directory = sourceTemporaryDirectory("noack")
        let path = directory + "/app.log"
        for index in 0..<50 { append("n-\(index)\n", to: path) }
        let state = sourceTemporaryDirectory("state")
        let first = SourceHarness(dataDirectory: state)
        first.start(try fileSource("include: [\(directory)/*.log]"), acknowledge: false)
        #expect(await first.waitFor(count: 50))
        await first.stop()
        let second = SourceHarness(dataDirectory: state)
        second.start(try fileSource("include: [\(directory)/*.log]"))
        #expect(await second.waitFor(count: 50))
        await second.stop()
        expectEachOnce(second.lines, prefix: "n", count: 50)
    }

    /// Chunks acknowledged after one that was not (a batch waiting for a retry while later ones are delivered)
    /// are recorded as delivered ranges: a restart sends again exactly the events of the unacknowledged chunks,
    /// identified by their byte offsets, with single lines and with multi-line events (flushed at a range's
    /// start as the first run flushed them).
    @Test(arguments: [false, true])
    func aRestartSendsAgainOnlyTheChunksNotAcknowledged(multiline: Bool) async throws {
        let directory = sourceTemporaryDirectory("ranges")
        let path = directory + "/app.log"
        let state = sourceTemporaryDirectory("state")
        var options = "include: [\(directory)/*.log]"
        if multiline { options += ", multiline: { start_pattern: '^event', timeout: 100ms }" }
        // Part p holds events p-0 ..< p-5 (with two continuation lines each in multi-line mode).
        func part(_ p: Int) -> String {
            (0..<5).map { "event \(p)-\($0)\n" + (multiline ? "  at frame 1\n  at frame 2\n" : "") }.joined()
        }
        // Parts 1 and 3 are not acknowledged; 0, 2 and 4 are, out of order with them.
        let unacknowledged: @Sendable ([ReceivedEvent]) -> Bool = { events in
            events.contains { $0.text.hasPrefix("event 1-") || $0.text.hasPrefix("event 3-") }
        }
        let first = SourceHarness(dataDirectory: state)
        first.start(try fileSource(options), acknowledging: { !unacknowledged($0) })
        for p in 0..<5 {
            append(part(p), to: path)
            #expect(await first.waitFor(count: 5 * (p + 1)))
        }
        await first.stop()
        let resent = first.events.filter { unacknowledged([$0]) }
        #expect(resent.count == 10)

        append(multiline ? "event end\n" : "end\n", to: path)
        let second = SourceHarness(dataDirectory: state)
        second.start(try fileSource(options))
        // The last line is read after everything before it: once it is in, nothing else is coming.
        #expect(await second.waitUntilLast { $0.text.hasSuffix("end") })
        await second.stop()
        let events = second.events.dropLast()
        #expect(events.map(\.text) == resent.map(\.text))
        #expect(events.map(\.offset) == resent.map(\.offset))
    }

    /// Chunks whose acknowledgement a stage cut at event boundaries (as `batch` does where a batch ends inside a
    /// chunk), the parts answered out of order (the last first), some never: the checkpoint holds exactly the
    /// delivered parts (the offset up to the first part not delivered, the later delivered ones as ranges), and
    /// a restart sends again exactly the events of the parts not delivered, same bytes and offsets, with single
    /// lines and with multi-line events.
    @Test(arguments: [false, true])
    func partsOfCutChunksAnsweredOutOfOrderAreCheckpointedExactly(multiline: Bool) async throws {
        let directory = sourceTemporaryDirectory("parts")
        let path = directory + "/app.log"
        let state = sourceTemporaryDirectory("state")
        var options = "include: [\(directory)/*.log]"
        if multiline { options += ", multiline: { start_pattern: '^event', timeout: 100ms }" }
        // Groups of four events, as batches would take them: "d" groups are delivered, "u" groups are not.
        let groups = ["d0", "u1", "d2", "d3", "u4", "d5"]
        let text = groups.map { group in
            (0..<4).map { "event \(group)-\($0)\n" + (multiline ? "  at frame 1\n" : "") }.joined()
        }.joined()
        @Sendable func group(_ event: ReceivedEvent) -> String { String(event.text.dropFirst(6).prefix(2)) }
        let held = Mutex<[Acknowledgement]>([])
        let handled = Mutex(0)
        let first = SourceHarness(dataDirectory: state)
        first.start(try fileSource(options)) { events, acknowledgements in
            defer { handled.withLock { $0 += events.count } }
            guard var rest = acknowledgements.tokens.first, !events.isEmpty else { return }
            var parts: [Acknowledgement] = []
            var start = 0
            for index in 1...events.count {
                guard index == events.count || group(events[index]) != group(events[start]) else { continue }
                var part = rest
                if index < events.count {
                    guard let (before, after) = rest.split(at: events[index].offset) else {
                        Issue.record("the chunk's acknowledgement cannot be cut at \(events[index].offset)")
                        return
                    }
                    part = before
                    rest = after
                }
                if group(events[start]).hasPrefix("d") { part.resolve(.delivered) }
                parts.append(part)
                start = index
            }
            held.withLock { $0.append(contentsOf: parts) }
        }
        append(text, to: path)
        // Handled, not only received: the last chunk's parts are in `held`.
        #expect(await waitUntil { handled.withLock { $0 } >= 24 })
        // Every chunk has been let go by now; its parts are answered from the file's end backwards.
        var parts: [Acknowledgement?] = held.withLock { held in
            defer { held = [] }
            return held.reversed()
        }
        while !parts.isEmpty { parts.removeFirst() }

        func offset(_ label: String) throws -> Int64 {
            try #require(first.events.first { $0.text.hasPrefix("event \(label)") }?.offset)
        }
        let end = Int64(text.utf8.count)
        @Sendable func written() throws -> CheckpointEntry? {
            let file = try #require(FileManager.default.enumerator(atPath: state)?.allObjects.compactMap { $0 as? String }
                .first { $0.hasSuffix("checkpoints.slots") })
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: state + "/" + file)))
            return CheckpointSlots.decode(bytes).newest?.entries.first
        }
        let expected = CheckpointEntry(
            identity: try #require(try written()?.identity), path: path, offset: try offset("u1-0"),
            delivered: [try offset("d2-0")..<offset("u4-0"), try offset("d5-0")..<end])
        // Written as the parts came back (what a process killed now would leave); the last chunk's own token may
        // be let go by the harness a moment after its parts.
        #expect(await waitUntil { (try? written()) == expected }, "checkpoint \(String(describing: try? written()))")
        await first.stop()
        #expect(try written()?.offset == offset("u1-0"))
        #expect(try written()?.delivered == [try offset("d2-0")..<offset("u4-0"), try offset("d5-0")..<end])
        let resent = first.events.filter { group($0).hasPrefix("u") }
        #expect(resent.count == 8)

        append(multiline ? "event end\n" : "end\n", to: path)
        let second = SourceHarness(dataDirectory: state)
        second.start(try fileSource(options))
        #expect(await second.waitUntilLast { $0.text.hasSuffix("end") })
        await second.stop()
        let events = second.events.dropLast()
        #expect(events.map(\.text) == resent.map(\.text))
        #expect(events.map(\.offset) == resent.map(\.offset))
    }

    /// Delivered ranges describe the file's bytes as they were: a file truncated (and written again, shorter than
    /// a range) while the agent was stopped is not that content any more, so nothing of it is skipped.
    @Test func rangesOfAFileTruncatedWhileStoppedAreDropped() async throws {
        let directory = sourceTemporaryDirectory("ranges-truncated")
        let path = directory + "/app.log"
        let state = sourceTemporaryDirectory("state")
        // The first 16 bytes identify the file: they survive the truncation below, so it resumes at its offset.
        let options = "include: [\(directory)/*.log], fingerprint_bytes: 16"
        let first = SourceHarness(dataDirectory: state)
        first.start(try fileSource(options), acknowledging: { events in !events.contains { $0.text.hasPrefix("t-1") } })
        for p in 0..<3 {
            append((0..<5).map { "t-\(p)\($0)\n" }.joined(), to: path)
            #expect(await first.waitFor(count: 5 * (p + 1)))
        }
        await first.stop()
        // Checkpoint: offset 25 (after part 0), and part 2 (bytes 50..<75) as a delivered range. The file is cut
        // back into part 1 and written again with new lines, ending (at 56) before the range does.
        _ = truncate(path, 40)
        append("new-0\nnew-1\n", to: path)
        append("end\n", to: path)
        let second = SourceHarness(dataDirectory: state)
        second.start(try fileSource(options))
        #expect(await second.waitUntilLast { $0.text == "end" })
        await second.stop()
        #expect(second.lines == ["t-10", "t-11", "t-12", "new-0", "new-1", "end"])
    }

    @Test func aCopyBeingFinishedWhenStoppedIsFinishedAfterARestart() async throws {
        let directory = sourceTemporaryDirectory("copy-restart")
        let path = directory + "/app.log"
        let state = sourceTemporaryDirectory("state")
        let options = "include: [\(directory)/*.log], scan_interval: 100ms, rotate_wait: 10s"
        for index in 0..<100 { append("k-\(index)\n", to: path) }
        let first = SourceHarness(dataDirectory: state)
        first.start(try fileSource(options))
        #expect(await first.waitFor(count: 100))
        await first.stop()
        // Run 2 reads lines 100..<200 but nothing acknowledges them; the file is copied and truncated meanwhile,
        // so run 2 stops while finishing the copy app.log.1 (recorded under that very name).
        for index in 100..<200 { append("k-\(index)\n", to: path) }
        let second = SourceHarness(dataDirectory: state)
        second.start(try fileSource(options), acknowledge: false)
        #expect(await second.waitFor(count: 100))
        try FileManager.default.copyItem(atPath: path, toPath: path + ".1")
        _ = truncate(path, 0)
        for index in 200..<250 { append("k-\(index)\n", to: path) }
        #expect(await second.waitFor(count: 150))
        await second.stop()
        // Run 3 finishes the copy from the checkpoint (100) and reads the truncated file from its start.
        let third = SourceHarness(dataDirectory: state)
        third.start(try fileSource(options))
        #expect(await third.waitFor(count: 150))
        let thirdLines = await linesUpToAMarker(third, appendingTo: path)
        await third.stop()
        expectEachOnce(first.lines + thirdLines, prefix: "k", count: 250)
    }

    @Test func rotationByRenameWhileWritingDeliversEveryLineOnce() async throws {
        let directory = sourceTemporaryDirectory("rename")
        let path = directory + "/app.log"
        let total = 3000
        let harness = SourceHarness()
        harness.start(try fileSource("include: [\(directory)/*.log], rotate_wait: 300ms, scan_interval: 100ms"))
        // The source must know the file before its first rotation: a file renamed to a name the glob excludes
        // before the agent ever saw it is, by design, not followed (on a loaded machine start-up can be slow).
        let first = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        _ = Array("w-0\n".utf8).withUnsafeBytes { write(first, $0.baseAddress, $0.count) }
        close(first)
        #expect(await harness.waitFor(count: 1, timeout: .seconds(15)))
        let writer = Task {
            var fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
            var reopenIn = -1
            for index in 1..<total {
                let line = Array("w-\(index)\n".utf8)
                _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if index % 1000 == 500 {
                    // logrotate's default: shift the old ones, rename the live file, create a new one. The
                    // application writes a few more lines to the old file before it reopens.
                    if FileManager.default.fileExists(atPath: path + ".1") { rename(path + ".1", path + ".2") }
                    rename(path, path + ".1")
                    reopenIn = 3
                }
                if reopenIn == 0 {
                    close(fd)
                    fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
                }
                reopenIn -= 1
                if index % 50 == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
            close(fd)
        }
        try await writer.value
        #expect(await harness.waitFor(count: total, timeout: .seconds(15)))
        let lines = await linesUpToAMarker(harness, appendingTo: path)
        await harness.stop()
        expectEachOnce(lines, prefix: "w", count: total)
    }

    @Test func copytruncateWhileWritingDeliversEveryLineOnce() async throws {
        let directory = sourceTemporaryDirectory("copytruncate")
        let path = directory + "/app.log"
        let total = 3000
        let harness = SourceHarness()
        harness.start(try fileSource("include: [\(directory)/*.log], rotate_wait: 300ms, scan_interval: 100ms"))
        // As above: the source must know the file before its first rotation.
        let first = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        _ = Array("c-0\n".utf8).withUnsafeBytes { write(first, $0.baseAddress, $0.count) }
        close(first)
        #expect(await harness.waitFor(count: 1, timeout: .seconds(15)))
        let writer = Task {
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
            for index in 1..<total {
                let line = Array("c-\(index)\n".utf8)
                _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if index % 1000 == 700 {
                    // logrotate's copytruncate: copy the live file, then truncate it in place (the writer keeps
                    // its descriptor; O_APPEND writes continue at the new end).
                    if FileManager.default.fileExists(atPath: path + ".1") {
                        try FileManager.default.removeItem(atPath: path + ".1")
                    }
                    try FileManager.default.copyItem(atPath: path, toPath: path + ".1")
                    _ = truncate(path, 0)
                }
                if index % 50 == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
            close(fd)
        }
        try await writer.value
        #expect(await harness.waitFor(count: total, timeout: .seconds(15)))
        let lines = await linesUpToAMarker(harness, appendingTo: path)
        await harness.stop()
        expectEachOnce(lines, prefix: "c", count: total)
    }

    @Test func newFilesArePickedUpAndDeletedFilesReleased() async throws {
        let directory = sourceTemporaryDirectory("discover")
        let harness = SourceHarness()
        append("top\n", to: directory + "/y.log")
        harness.start(try fileSource("include: ['\(directory)/**/*.log'], exclude: ['*.gz'], scan_interval: 200ms"))
        // The first scan is done once its file's line arrived: what follows is found by later scans.
        #expect(await harness.waitFor(count: 1))
        try FileManager.default.createDirectory(atPath: directory + "/a/b", withIntermediateDirectories: true)
        append("deep\n", to: directory + "/a/b/x.log")
        append("ignored\n", to: directory + "/a/b/x.log.gz")
        #expect(await harness.waitFor(count: 2))
        #expect(Set(harness.lines) == ["deep", "top"])
        // A deleted file is closed once read to its end: its descriptor is gone from /proc/self/fd.
        append("last words\n", to: directory + "/a/b/x.log")
        unlink(directory + "/a/b/x.log")
        #expect(await harness.waitFor(count: 3))
        let released = await waitUntil(timeout: .seconds(5)) {
            !openDescriptors().contains { $0.hasPrefix(directory + "/a/b/x.log") }
        }
        #expect(released)
        await harness.stop()
        #expect(harness.lines.last == "last words")
    }

    @Test func longLinesAreSplitAndAPartialLineWaitsForItsTimeout() async throws {
        let directory = sourceTemporaryDirectory("long")
        let path = directory + "/app.log"
        append("0123456789abcdefghij-tail\nshort\nwaiting", to: path)
        let harness = SourceHarness()
        harness.start(
            try fileSource(
                "include: [\(directory)/*.log], max_line_bytes: 10, long_lines: split, partial_line_timeout: 500ms"))
        #expect(await harness.waitFor(count: 4))
        #expect(harness.lines == ["0123456789", "abcdefghij", "-tail", "short"])
        #expect(harness.events.map(\.truncated) == [true, true, true, false])
        let clock = ContinuousClock()
        let start = clock.now
        #expect(await harness.waitFor(count: 5))
        #expect(clock.now - start >= .milliseconds(300))
        #expect(harness.lines.last == "waiting")
        #expect(harness.events.last?.truncated == false)
        await harness.stop()
    }

    @Test func multilineJoinsStackTraces() async throws {
        let directory = sourceTemporaryDirectory("multiline")
        let path = directory + "/app.log"
        append("2024-01-01 boom\n  at a()\n  at b()\n2024-01-01 fine\n", to: path)
        let harness = SourceHarness()
        harness.start(
            try fileSource("include: [\(directory)/*.log], multiline: { start_pattern: '^\\d{4}-', timeout: 200ms }"))
        #expect(await harness.waitFor(count: 2))
        await harness.stop()
        #expect(harness.lines == ["2024-01-01 boom\n  at a()\n  at b()", "2024-01-01 fine"])
        #expect(harness.events.map(\.offset) == [0, 34])
    }

    /// A start_pattern that backtracks exponentially: the line is given up within its step budget, joins the
    /// event being gathered (nothing is lost) and is counted; Swift's Regex spent minutes on it.
    @Test(.timeLimit(.minutes(1))) func multilineStartPatternCannotStallTheSource() async throws {
        let directory = sourceTemporaryDirectory("multiline-budget")
        let path = directory + "/app.log"
        append("aaaa start\n" + String(repeating: "a", count: 22) + "b\naaa next\n", to: path)
        let harness = SourceHarness()
        harness.start(
            try fileSource("include: [\(directory)/*.log], multiline: { start_pattern: '^(a+)+(\\s|$)', timeout: 200ms }"))
        #expect(await harness.waitFor(count: 2))
        await harness.stop()
        #expect(harness.lines == ["aaaa start\n" + String(repeating: "a", count: 22) + "b", "aaa next"])
        #expect(harness.metrics.errors.load(ordering: .relaxed) == 1)
    }

    @Test func pollingFindsChangesWithoutInotify() async throws {
        let directory = sourceTemporaryDirectory("poll")
        let path = directory + "/app.log"
        let harness = SourceHarness()
        harness.start(
            try fileSource("include: [\(directory)/*.log], watch: poll, poll_interval: 50ms, scan_interval: 100ms"))
        append("one\n", to: path)
        #expect(await harness.waitFor(count: 1))
        append("two\n", to: path)
        #expect(await harness.waitFor(count: 2))
        await harness.stop()
        #expect(harness.lines == ["one", "two"])
    }

    @Test func exitOnEOFEndsTheSourceAfterTheLastLine() async throws {
        let directory = sourceTemporaryDirectory("eof")
        for index in 0..<1000 { append("e-\(index)\n", to: directory + "/a.log") }
        append("unterminated", to: directory + "/b.log")
        let harness = SourceHarness()
        harness.start(try fileSource("include: [\(directory)/*.log], exit_on_eof: true"))
        let error = await harness.finish()
        #expect(error == nil)
        #expect(harness.lines.count == 1001)
        #expect(harness.lines.last == "unterminated")
    }

    @Test func configurationIsValidated() {
        #expect(configErrors("{ type: file, include: [/var/log/*.log] }").isEmpty)
        #expect(configErrors("{ type: file }").contains { $0.contains("missing required option 'include'") })
        #expect(configErrors("{ type: file, include: [] }").contains { $0.contains("at least one pattern") })
        #expect(configErrors("{ type: file, include: ['/var/log/{a,b'] }").contains { $0.contains("unmatched '{'") })
        #expect(
            configErrors("{ type: file, include: [/a/*.log], read_from: middle }").contains {
                $0.contains("beginning, end")
            })
        #expect(
            configErrors("{ type: file, include: [/a/*.log], scan_interval: 0 }").contains {
                $0.contains("more than 0")
            })
        #expect(
            configErrors("{ type: file, include: [/a/*.log], multiline: { start_pattern: '(' } }").contains {
                $0.contains("not a valid regular expression")
            })
        #expect(
            configErrors("{ type: file, include: [/a/*.log], multiline: { start: x } }").contains {
                $0.contains("multiline.start")
            })
    }
}

/// The paths this process has open, from /proc/self/fd.
func openDescriptors() -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return entries.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
}
