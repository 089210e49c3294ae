import Foundation
import Testing

extension EndToEnd {
    /// The disk buffer under faults, with real processes: the agent, a separate emulator that refuses connections
    /// for a while (a link that is down), and segment files damaged between two runs as a power cut would.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct DiskBufferFaultTests {
        typealias Faults = DeliveryFaultTests

        static let lines = 40_000

        /// The file tail's checkpointed offset of `log` (0 before the first checkpoint).
        static func checkpointedOffset(_ directory: URL) -> Int {
            TailCheckpoint.offset(stateDirectory: directory.appendingPathComponent("state"))
        }

        static func fileSize(_ path: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
        }

        /// The last cumulative count of events (here: batches) a full buffer dropped, from the per-second summaries.
        static func droppedByFullBuffer(_ log: URL) -> Int {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            var last = 0
            for line in text.split(separator: "\n") where line.contains("[cloud] component summary") {
                if let range = line.range(of: #"buffer\.dropped_full_total=\d+"#, options: .regularExpression) {
                    last = Int(line[range].split(separator: "=")[1]) ?? last
                }
            }
            return last
        }

        static let diskBuffer = "    buffer: { type: disk, max_size: 1MiB, when_full: %@, fsync_interval: 50ms }"

        /// An emulator that refuses connections for its first 6 s, a log of ``lines`` lines, and a pipeline that
        /// tails it into the sink through a 1 MiB disk buffer whose `when_full` is `whenFull`: the buffer fills
        /// while the cloud is down. The caller stops the emulator.
        static func cloudDown(whenFull: String, global: String = "") throws -> (
            directory: URL, emulator: Faults.EmulatorProcess, log: String, config: String
        ) {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try Faults.EmulatorProcess(directory: directory)
            let log = directory.appendingPathComponent("app.log").path
            do {
                try Faults.writeLines(log, 0..<Self.lines)
                let config = try Faults.config(
                    directory: directory, log: log, emulator: emulator, buffer: String(format: Self.diskBuffer, whenFull),
                    global: global)
                try emulator.faults(#"{"refuse_connections_seconds":6}"#)
                return (directory, emulator, log, config)
            } catch {
                emulator.stop()
                throw error
            }
        }

        @Test func aFullBufferThatBlocksStopsTheTailAndLosesNothing() throws {
            let (directory, emulator, log, config) = try Self.cloudDown(whenFull: "block")
            defer { emulator.stop() }
            let agent = try Faults.startAgent(config)
            // The cloud is down: the buffer fills up and the tail stops reading where it is.
            Thread.sleep(forTimeInterval: 3)
            let stalledAt = Self.checkpointedOffset(directory)
            Thread.sleep(forTimeInterval: 1)
            let stillAt = Self.checkpointedOffset(directory)
            #expect(stalledAt > 0 && stalledAt < Self.fileSize(log), "the tail waits for room in the buffer")
            #expect(stillAt == stalledAt)
            // The cloud comes back: everything arrives.
            Faults.waitFor(90) { Set(emulator.receivedLines()).count >= Self.lines }
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            let received = emulator.receivedLines()
            let distinct = Set(received)
            print(
                "disk buffer full, block: sent \(Self.lines), tail stalled at byte \(stalledAt) of \(Self.fileSize(log)) while the cloud was down, received \(received.count), distinct \(distinct.count), duplicates \(received.count - distinct.count), lost \(Self.lines - distinct.count)"
            )
            #expect(distinct.count == Self.lines)
            #expect(agent.terminationStatus == 0)
        }

        @Test func aFullBufferThatDropsTheOldestKeepsReadingAndCountsEveryDrop() throws {
            let (directory, emulator, _, config) = try Self.cloudDown(
                whenFull: "drop_oldest", global: "summary_interval: 1s")
            defer { emulator.stop() }
            let agentLog = directory.appendingPathComponent("agent.log")
            let agent = try Faults.startAgent(config, log: agentLog)
            Faults.waitFor(90) { emulator.receivedLines().contains(Faults.line(Self.lines - 1)) }
            // One more summary line after the last delivery.
            Thread.sleep(forTimeInterval: 2)
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            let received = emulator.receivedLines()
            let distinct = Set(received)
            // The buffer is in front of the sink, so it counts batches: 500 lines each (the file has 80 full ones).
            let droppedLines = Self.droppedByFullBuffer(agentLog) * 500
            print(
                "disk buffer full, drop_oldest: sent \(Self.lines), received \(received.count), distinct \(distinct.count), dropped (counted) \(droppedLines), lost without a count \(Self.lines - distinct.count - droppedLines)"
            )
            #expect(droppedLines > 0)
            #expect(distinct.count + droppedLines == Self.lines, "every line is delivered or counted as dropped, the tail never waited")
            #expect(received.count == distinct.count)
            // The newest lines are the ones kept.
            #expect(distinct.contains(Faults.line(Self.lines - 1)))
            #expect(agent.terminationStatus == 0)
        }

        /// The frames of one segment file: `[length u32 LE][crc32 u32][payload]` after an 8-byte header.
        static func frames(_ bytes: [UInt8]) -> [(offset: Int, length: Int)] {
            var frames: [(Int, Int)] = []
            var offset = 8
            while offset + 8 <= bytes.count {
                let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
                guard offset + 8 + length <= bytes.count else { break }
                frames.append((offset, length))
                offset += 8 + length
            }
            return frames
        }

        /// Line numbers whose text is in `payload`.
        static func lineNumbers(in payload: ArraySlice<UInt8>) -> Set<Int> {
            let text = String(decoding: payload, as: UTF8.self)
            var numbers = Set<Int>()
            var rest = text[...]
            while let range = rest.range(of: "line ") {
                let digits = rest[range.upperBound...].prefix(while: \.isNumber)
                if let number = Int(digits) { numbers.insert(number) }
                rest = rest[range.upperBound...]
            }
            return numbers
        }

        @Test func aCorruptedAndATruncatedSegmentCostOnlyTheirDamagedRecords() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try Faults.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            let log = directory.appendingPathComponent("app.log").path
            let total = 5_000
            try Faults.writeLines(log, 0..<total)
            let buffer = "    buffer: { type: disk, max_size: 1MiB, fsync_interval: 50ms }"
            let config = try Faults.config(
                directory: directory, log: log, emulator: emulator, buffer: buffer, shutdownTimeout: "1s")
            // First run, cloud down: everything goes into the disk buffer (the checkpoint says so), then the agent stops.
            try emulator.faults(#"{"refuse_connections_seconds":8}"#)
            let start = Date()
            let first = try Faults.startAgent(config)
            Faults.waitFor(30) { Self.checkpointedOffset(directory) == Self.fileSize(log) }
            kill(first.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: first, timeout: 30)
            #expect(emulator.receivedLines().isEmpty)

            // A power cut's damage: one flipped byte in a record of the first segment, a torn last record in the last.
            let bufferDirectory = directory.appendingPathComponent("state/cloud/buffer")
            let segments = try FileManager.default.contentsOfDirectory(atPath: bufferDirectory.path)
                .filter { $0.hasPrefix("segment-") }.sorted().map { bufferDirectory.appendingPathComponent($0) }
            try #require(segments.count >= 2, "the 1 MiB buffer spreads 5000 lines over several 128 KiB segments")
            var damagedLines = Set<Int>()
            var firstBytes = [UInt8](try Data(contentsOf: segments.first!))
            let firstFrames = Self.frames(firstBytes)
            let victim = firstFrames[min(1, firstFrames.count - 1)]
            damagedLines.formUnion(Self.lineNumbers(in: firstBytes[(victim.offset + 8)..<(victim.offset + 8 + victim.length)]))
            firstBytes[victim.offset + 8 + victim.length / 2] ^= 0xFF
            try Data(firstBytes).write(to: segments.first!)
            let lastBytes = [UInt8](try Data(contentsOf: segments.last!))
            let torn = Self.frames(lastBytes).last!
            damagedLines.formUnion(Self.lineNumbers(in: lastBytes[(torn.offset + 8)..<(torn.offset + 8 + torn.length)]))
            try Data(lastBytes[..<(torn.offset + 8 + torn.length / 2)]).write(to: segments.last!)

            // Second run, once the cloud is back: the intact records are delivered, the damage is counted in the log.
            let downFor = 8 - Date().timeIntervalSince(start)
            if downFor > 0 { Thread.sleep(forTimeInterval: downFor + 0.5) }
            let agentLog = directory.appendingPathComponent("agent.log")
            let second = try Faults.startAgent(config, log: agentLog)
            Faults.waitFor(60) { Set(emulator.receivedLines()).count >= total - damagedLines.count }
            Thread.sleep(forTimeInterval: 0.5)
            kill(second.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: second, timeout: 30)
            let distinct = Set(emulator.receivedLines())
            let missing = Set((0..<total).filter { !distinct.contains(Faults.line($0)) })
            let recoveryLog = (try? String(contentsOf: agentLog, encoding: .utf8)) ?? ""
            print(
                "damaged disk buffer: sent \(total), in damaged records \(damagedLines.count), received distinct \(distinct.count), lost \(missing.count) (all of them in the damaged records: \(missing.isSubset(of: damagedLines)))"
            )
            #expect(!damagedLines.isEmpty)
            #expect(missing == damagedLines, "exactly the lines of the two damaged records are missing")
            #expect(recoveryLog.contains("disk buffer recovered") && recoveryLog.contains("buffer.damaged_records=2"), "\(recoveryLog)")
            #expect(second.terminationStatus == 0)
        }
    }
}
