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

        /// The bytes in the sink's disk buffer segments (header and framing included).
        static func bufferedBytes(_ directory: URL) -> Int {
            let buffer = directory.appendingPathComponent("state/cloud/buffer")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: buffer.path)) ?? []
            return names.filter { $0.hasPrefix("segment-") }.reduce(0) {
                $0 + fileSize(buffer.appendingPathComponent($1).path)
            }
        }

        /// Points the sink of the configuration at `config` to `link` instead of straight at `emulator`.
        static func routeSink(of config: String, through link: CloudLink, to emulator: Faults.EmulatorProcess) throws {
            let text = try String(contentsOfFile: config, encoding: .utf8)
            let direct = "endpoint: https://127.0.0.1:\(emulator.port)"
            precondition(text.contains(direct))
            try text.replacingOccurrences(of: direct, with: "endpoint: \(link.endpoint)")
                .write(toFile: config, atomically: true, encoding: .utf8)
        }

        static let diskBuffer = "    buffer: { type: disk, max_size: 1MiB, when_full: %@, fsync_interval: 50ms }"

        /// An emulator behind a link that is down (a cloud the test brings back), a log of ``lines`` lines, and a
        /// pipeline that tails it into the sink through a 1 MiB disk buffer whose `when_full` is `whenFull`: the
        /// buffer fills while the cloud is down. The caller brings the link up and stops both.
        static func cloudDown(whenFull: String, global: String = "") throws -> (
            directory: URL, emulator: Faults.EmulatorProcess, link: CloudLink, log: String, config: String
        ) {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try Faults.EmulatorProcess(directory: directory)
            let log = directory.appendingPathComponent("app.log").path
            var link: CloudLink?
            do {
                link = try CloudLink(to: emulator.port)
                try Faults.writeLines(log, 0..<Self.lines)
                let config = try Faults.config(
                    directory: directory, log: log, emulator: emulator, buffer: String(format: Self.diskBuffer, whenFull),
                    global: global)
                try Self.routeSink(of: config, through: link!, to: emulator)
                return (directory, emulator, link!, log, config)
            } catch {
                link?.stop()
                emulator.stop()
                throw error
            }
        }

        @Test func aFullBufferThatBlocksStopsTheTailAndLosesNothing() throws {
            let (directory, emulator, link, log, config) = try Self.cloudDown(whenFull: "block")
            defer {
                link.stop()
                emulator.stop()
            }
            let agent = try Faults.startAgent(config)
            // The cloud is down: the buffer fills up (to within one record, a 500-line batch of ~75 KB, of its
            // 1 MiB) and the tail stops reading where it is; its checkpoint settles within a checkpoint interval
            // (200 ms) of the buffer's last write.
            let full = (1 << 20) - (128 << 10)
            Faults.waitFor(60) { Self.bufferedBytes(directory) >= full }
            try #require(Self.bufferedBytes(directory) >= full, "the buffer fills while the cloud is down")
            var stalledAt = Self.checkpointedOffset(directory)
            Faults.waitFor(10) {
                let previous = stalledAt
                usleep(500_000)  // polls the checkpoint at 2.5 checkpoint intervals: it settled once unchanged
                stalledAt = Self.checkpointedOffset(directory)
                return stalledAt == previous
            }
            // Nothing may happen now: the tail must not move on while the buffer is full. Sleeping is the test here.
            Thread.sleep(forTimeInterval: 1)
            let stillAt = Self.checkpointedOffset(directory)
            #expect(stalledAt > 0 && stalledAt < Self.fileSize(log), "the tail waits for room in the buffer")
            #expect(stillAt == stalledAt)
            // The cloud comes back: everything arrives.
            link.comeUp()
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
            let (directory, emulator, link, log, config) = try Self.cloudDown(
                whenFull: "drop_oldest", global: "summary_interval: 1s")
            defer {
                link.stop()
                emulator.stop()
            }
            let agentLog = directory.appendingPathComponent("agent.log")
            let agent = try Faults.startAgent(config, log: agentLog)
            // The tail reads the whole file while the cloud is down: whatever did not fit was dropped.
            Faults.waitFor(60) { Self.checkpointedOffset(directory) == Self.fileSize(log) }
            link.comeUp()
            Faults.waitFor(90) { emulator.receivedLines().contains(Faults.line(Self.lines - 1)) }
            // A summary line (one a second) that counts every drop: delivered and dropped add up to what was sent.
            Faults.waitFor(30) {
                Set(emulator.receivedLines()).count + Self.droppedByFullBuffer(agentLog) * 500 >= Self.lines
            }
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
            let link = try CloudLink(to: emulator.port)
            defer { link.stop() }
            let log = directory.appendingPathComponent("app.log").path
            let total = 5_000
            try Faults.writeLines(log, 0..<total)
            let buffer = "    buffer: { type: disk, max_size: 1MiB, fsync_interval: 50ms }"
            let config = try Faults.config(
                directory: directory, log: log, emulator: emulator, buffer: buffer, shutdownTimeout: "1s")
            try Self.routeSink(of: config, through: link, to: emulator)
            // First run, cloud down: everything goes into the disk buffer (the checkpoint says so), then the agent stops.
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
            link.comeUp()
            let agentLog = directory.appendingPathComponent("agent.log")
            let second = try Faults.startAgent(config, log: agentLog)
            func recoveryLog() -> String { (try? String(contentsOf: agentLog, encoding: .utf8)) ?? "" }
            // Everything intact delivered, and both damaged records counted (the torn one at recovery, the corrupted
            // one when it is read).
            Faults.waitFor(60) {
                Set(emulator.receivedLines()).count >= total - damagedLines.count
                    && recoveryLog().contains("buffer.damaged_records=2")
            }
            kill(second.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: second, timeout: 30)
            let distinct = Set(emulator.receivedLines())
            let missing = Set((0..<total).filter { !distinct.contains(Faults.line($0)) })
            let finalLog = recoveryLog()
            print(
                "damaged disk buffer: sent \(total), in damaged records \(damagedLines.count), received distinct \(distinct.count), lost \(missing.count) (all of them in the damaged records: \(missing.isSubset(of: damagedLines)))"
            )
            #expect(!damagedLines.isEmpty)
            #expect(missing == damagedLines, "exactly the lines of the two damaged records are missing")
            #expect(
                finalLog.contains("disk buffer recovered") && finalLog.contains("buffer.damaged_records=2"), "\(finalLog)")
            #expect(second.terminationStatus == 0)
        }

        // MARK: Failed fsyncs (an LD_PRELOAD shim makes fsync and fdatasync fail with EIO on chosen files)

        /// Compiles the shim: `fsync`/`fdatasync` of a descriptor whose path contains `$UPLINK_FAIL_FSYNC` fail with
        /// EIO (and are counted in `$UPLINK_FAIL_FSYNC_COUNT_FILE` when set); everything else goes to libc.
        static func failingFsyncShim(in directory: URL) throws -> String {
            let source = directory.appendingPathComponent("fail_fsync.c")
            let library = directory.appendingPathComponent("libfail_fsync.so")
            try """
            #define _GNU_SOURCE
            #include <dlfcn.h>
            #include <errno.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <string.h>
            #include <unistd.h>

            static int should_fail(int fd) {
                const char *pattern = getenv("UPLINK_FAIL_FSYNC");
                if (pattern == NULL || *pattern == 0) return 0;
                char link[64], target[4096];
                snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
                ssize_t length = readlink(link, target, sizeof target - 1);
                if (length < 0) return 0;
                target[length] = 0;
                return strstr(target, pattern) != NULL;
            }

            int fsync(int fd) {
                if (should_fail(fd)) { errno = EIO; return -1; }
                int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
                return real(fd);
            }

            int fdatasync(int fd) {
                if (should_fail(fd)) { errno = EIO; return -1; }
                int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
                return real(fd);
            }
            """.write(to: source, atomically: true, encoding: .utf8)
            let gcc = Process()
            gcc.executableURL = URL(fileURLWithPath: "/usr/bin/gcc")
            gcc.arguments = ["-shared", "-fPIC", "-O1", "-o", library.path, source.path, "-ldl"]
            try gcc.run()
            try UplinkProcess.wait(for: gcc, timeout: 60)
            try #require(gcc.terminationStatus == 0, "gcc builds the fsync shim")
            return library.path
        }

        /// `uplink run` at info level into `log`, with extra environment variables.
        static func startAgent(_ config: String, log: URL, environment: [String: String]) throws -> Process {
            let process = Process()
            process.executableURL = UplinkProcess.executable
            process.arguments = ["run", config, "--log-level", "info"]
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: log)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return process
        }

        static func text(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

        /// GET `path` from the agent's API (its port is in the log), nil when it does not answer.
        static func get(_ path: String, agentLog: URL) -> String? {
            let log = text(agentLog)
            guard let range = log.range(of: "api.port="), let port = Int(log[range.upperBound...].prefix(while: \.isNumber)) else {
                return nil
            }
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = ["-s", "--max-time", "5", "http://127.0.0.1:\(port)\(path)"]
            let output = Pipe()
            curl.standardOutput = output
            guard (try? curl.run()) != nil else { return nil }
            let data = output.fileHandleForReading.readDataToEndOfFile()
            curl.waitUntilExit()
            return curl.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
        }

        static func metric(_ text: String, _ name: String, component: String) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(name + "{") && line.contains("component_id=\"\(component)\"") {
                return line.split(separator: " ").last.flatMap { Double($0) }
            }
            return nil
        }

        @Test func failedFsyncsOfTheBufferSegmentsAcknowledgeNothingAndSayWhy() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let shim = try Self.failingFsyncShim(in: directory)
            let emulator = try Faults.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            let log = directory.appendingPathComponent("app.log").path
            let total = 3_000
            try Faults.writeLines(log, 0..<total)
            let config = try Faults.config(
                directory: directory, log: log, emulator: emulator,
                buffer: "    buffer: { type: disk, max_size: 4MiB, fsync_interval: 50ms }",
                shutdownTimeout: "2s", global: #"api: { address: "127.0.0.1:0" }"#)
            let agentLog = directory.appendingPathComponent("agent.log")
            let agent = try Self.startAgent(
                config, log: agentLog, environment: ["LD_PRELOAD": shim, "UPLINK_FAIL_FSYNC": "/cloud/buffer/segment-"])
            // Readiness: the buffer has failed to sync, said so, and kept failing through several retries, one a
            // second (seconds in which a 200 ms checkpoint would have moved had anything been acknowledged).
            var failures = 0.0
            var errors = 0.0
            Faults.waitFor(60) {
                guard let metrics = Self.get("/metrics", agentLog: agentLog) else { return false }
                failures = Self.metric(metrics, "uplink_buffer_sync_failures_total", component: "cloud") ?? 0
                errors = Self.metric(metrics, "uplink_component_errors_total", component: "cloud") ?? 0
                return failures >= 6
            }
            let health = Self.get("/health", agentLog: agentLog) ?? ""
            let checkpoint = Self.checkpointedOffset(directory)
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            let lines = Self.text(agentLog).split(separator: "\n")
            let errorLine = lines.first { $0.contains("disk buffer data is not durable") }.map(String.init) ?? ""
            print(
                "fsync EIO on the buffer segments: sync failures \(failures), errors_total \(errors), tail checkpoint \(checkpoint) of \(Self.fileSize(log)) bytes, log: \(errorLine)"
            )
            #expect(failures >= 6)
            #expect(errors >= failures, "every failed sync counts as an error of the sink")
            #expect(checkpoint == 0, "nothing the failed fsyncs covered is acknowledged, so the tail does not checkpoint it")
            #expect(errorLine.contains("/cloud/buffer/segment-") && errorLine.contains("error.errno=5"), "\(errorLine)")
            #expect(health.contains("the disk buffer cannot make data durable"), "\(health)")

            // Without the fault, a restart delivers everything: what was not acknowledged is read again.
            let second = try Self.startAgent(config, log: directory.appendingPathComponent("agent2.log"), environment: [:])
            Faults.waitFor(60) { Set(emulator.receivedLines()).count >= total }
            kill(second.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: second, timeout: 30)
            #expect(Set(emulator.receivedLines()).count == total)
        }

        @Test func aDeadLetterWhoseFsyncFailsIsNotAcknowledged() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let shim = try Self.failingFsyncShim(in: directory)
            let emulator = try Faults.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            let log = directory.appendingPathComponent("app.log").path
            let total = 1_000
            try Faults.writeLines(log, 0..<total)
            // device002 may only publish to its upload topic: every message is refused for good (ACL) and
            // dead-lettered.
            let config = try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.appendingPathComponent("state").path)
                shutdown_timeout: 2s
                sources:
                  app: { type: file, include: ["\(log)"], read_from: beginning, checkpoint_interval: 200ms }
                transforms:
                  wrap: { type: json, inputs: [app] }
                  batches: { type: batch, inputs: [wrap], encoding: ndjson, max_events: 100, timeout: 200ms }
                sinks:
                  cloud:
                    type: iotcore_http
                    inputs: [batches]
                    endpoint: https://127.0.0.1:\(emulator.port)
                    ca_file: \(emulator.caFile)
                    product_sn: abcdefgh12345678
                    device_sn: device002
                    device_secret: another-secret-02
                    topic: /abcdefgh12345678/device002/forbidden
                """, name: "dead-letters.yaml")
            let deadLetters = directory.appendingPathComponent("state/cloud/dead-letters.jsonl").path
            let agentLog = directory.appendingPathComponent("agent.log")
            let agent = try Self.startAgent(
                config, log: agentLog, environment: ["LD_PRELOAD": shim, "UPLINK_FAIL_FSYNC": "dead-letters.jsonl"])
            // The sink cannot make a dead letter durable: it stops (the pipeline with it) instead of acknowledging.
            try UplinkProcess.wait(for: agent, timeout: 60)
            let checkpoint = Self.checkpointedOffset(directory)
            let failure = Self.text(agentLog).split(separator: "\n").first { $0.contains("cannot fsync") }.map(String.init) ?? ""
            print("fsync EIO on dead-letters.jsonl: exit \(agent.terminationStatus), tail checkpoint \(checkpoint), log: \(failure)")
            #expect(agent.terminationStatus == 1)
            #expect(checkpoint == 0, "no record whose dead letter failed to sync is acknowledged")
            #expect(failure.contains(deadLetters) && failure.contains("errno 5"), "\(failure)")

            // Without the fault every line is dead-lettered and acknowledged.
            let second = try Self.startAgent(config, log: directory.appendingPathComponent("agent2.log"), environment: [:])
            Faults.waitFor(60) { Self.checkpointedOffset(directory) == Self.fileSize(log) }
            kill(second.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: second, timeout: 30)
            let lettered = Self.text(URL(fileURLWithPath: deadLetters)).split(separator: "\n").count
            #expect(Self.checkpointedOffset(directory) == Self.fileSize(log))
            #expect(lettered >= total / 100, "every batch of 100 lines is dead-lettered")
        }
    }
}
