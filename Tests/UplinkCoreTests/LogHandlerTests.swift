import Logging
import Synchronization
import Testing
import UplinkCore

/// The log handler's rate limit and escaping, with the lines it writes captured and its clock in the test's hand.
@Suite struct LogHandlerTests {
    final class Capture: Sendable {
        let lines = Mutex<[String]>([])
        let clock = Mutex(ContinuousClock.now)

        func advance(by duration: Duration) { clock.withLock { $0 += duration } }

        func logger(
            format: UplinkLogHandler.Format = .text, limiter: LogRateLimiter = LogRateLimiter()
        ) -> (Logger, UplinkLogHandler.Output) {
            let output = UplinkLogHandler.Output(
                rateLimiter: limiter, now: { self.clock.withLock { $0 } },
                write: { line in self.lines.withLock { $0.append(String(decoding: line, as: UTF8.self)) } })
            var logger = Logger(label: "test") { label in
                UplinkLogHandler(label: label, level: .trace, format: format, output: output)
            }
            logger[metadataKey: "component_id"] = "parse"
            return (logger, output)
        }
    }

    @Test func aThousandDeadLettersWriteAFewLinesAndACount() {
        let capture = Capture()
        let (logger, _) = capture.logger()
        for index in 0..<1000 {
            logger.warning("record dead-lettered", metadata: ["record.index": "\(index)"])
        }
        #expect(capture.lines.withLock { $0.count } == LogRateLimiter.defaultBurst)
        // Once the interval is over, the next line of any component reports the count first.
        capture.advance(by: LogRateLimiter.defaultInterval)
        logger.info("checkpoint written")
        let lines = capture.lines.withLock { $0 }
        #expect(lines.count == LogRateLimiter.defaultBurst + 2)
        let summary = lines[LogRateLimiter.defaultBurst]
        #expect(summary.contains(" WARNING [parse] suppressed \(1000 - LogRateLimiter.defaultBurst) similar messages"))
        #expect(summary.contains(#"log.message="record dead-lettered""#))
        #expect(lines.last?.contains("checkpoint written") == true)
    }

    @Test func aFailureEvery200msLogsABurstThenOneCountPerInterval() {
        let capture = Capture()
        let (logger, output) = capture.logger()
        // Two minutes of a checkpoint write failing every 200 ms: 600 attempts.
        for _ in 0..<600 {
            logger.error("cannot write the checkpoint", metadata: ["file.path": "/var/lib/uplink/x"])
            capture.advance(by: .milliseconds(200))
        }
        output.flushSuppressed(format: .text)
        let lines = capture.lines.withLock { $0 }
        let intervals = Int((Duration.seconds(120) / LogRateLimiter.defaultInterval).rounded(.up))
        // Per interval: the burst, then one count line.
        #expect(lines.count == intervals * (LogRateLimiter.defaultBurst + 1))
        let suppressed = lines.filter { $0.contains("similar messages") }
        #expect(suppressed.count == intervals)
        #expect(suppressed.allSatisfy { $0.contains(" ERROR [parse] suppressed ") })
    }

    @Test func differentMessagesAndComponentsAreCountedApart() {
        let capture = Capture()
        let (logger, _) = capture.logger()
        var other = logger
        other[metadataKey: "component_id"] = "cloud"
        for _ in 0..<20 {
            logger.warning("one problem")
            logger.warning("another problem")
            other.warning("one problem")
        }
        #expect(capture.lines.withLock { $0.count } == 3 * LogRateLimiter.defaultBurst)
    }

    @Test func debugAndTraceAreNotLimited() {
        let capture = Capture()
        let (logger, _) = capture.logger()
        for _ in 0..<50 { logger.debug("read a line") }
        #expect(capture.lines.withLock { $0.count } == 50)
    }

    /// Every control character from data (a topic with NUL and tab, an escape sequence) is escaped in both
    /// formats: a line stays one line, and a terminal is never driven by data.
    @Test(arguments: UplinkLogHandler.Format.allCases)
    func controlCharactersAreEscaped(format: UplinkLogHandler.Format) throws {
        let capture = Capture()
        let (logger, _) = capture.logger(format: format)
        let topic = "/a\u{0}b\tc\u{1B}[2J\u{7F}\u{85}\nforged INFO line"
        logger.warning("bad topic \u{0}\t\u{1B}", metadata: ["message.topic": "\(topic)", "k\u{7}ey": "v"])
        let line = try #require(capture.lines.withLock { $0.first })
        let body = line.dropLast()
        #expect(line.last == "\n")
        #expect(!body.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        #expect(body.contains(#"\u0000"#))
        #expect(body.contains(#"\t"#))
        #expect(body.contains(#"\u001b"#))
        #expect(body.contains(#"\u007f"#))
        #expect(body.contains(#"\u0085"#))
        #expect(body.contains(#"\n"#))
        if format == .json {
            let parsed = try JSONReader.parse(Array(body.utf8))
            guard case .object(let fields) = parsed else {
                Issue.record("not an object: \(line)")
                return
            }
            #expect(fields["message.topic"] == .string(topic))
            #expect(fields["message"] == .string("bad topic \u{0}\t\u{1B}"))
        }
    }
}
