import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore
import UplinkFileSystem
import UplinkFileSystemTesting

@testable import UplinkPlugins

/// A transform's rejects on a simulated disk whose fsync fails (EIO): the dead letter is not durable, so the
/// chunk it came from is not acknowledged; once fsync works again, dead letters are acknowledged as before.
@Suite struct DeadLetterRejectionsTests {
    @Test func aDeadLetterWhoseFsyncFailsLeavesItsChunkUnacknowledged() throws {
        let fileSystem = SimulatedFileSystem()
        _ = fileSystem.makeDirectory("/state", mode: 0o700)
        fileSystem.failSyncs(times: 1) { $0.hasSuffix("dead-letters.jsonl") }
        let metrics = ComponentMetrics()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let context = ComponentContext(
            id: "wrap", type: "json", role: .transform, logger: logger, metrics: metrics, dataDirectory: "/state")
        var rejections = Rejections(
            context: context, deadLetters: DeadLetterFile(path: "/state/wrap/dead-letters.jsonl", fileSystem: fileSystem))
        let statuses = Mutex<[DeliveryStatus]>([])
        func token() -> Acknowledgement { Acknowledgement { status in statuses.withLock { $0.append(status) } } }

        var first: Acknowledgements? = Acknowledgements([token()])
        rejections.reject(Array("bad".utf8), topic: nil, reason: "does not parse", deadLetter: true)
        rejections.settle(first!)
        // A transform resolves a chunk whose events all were rejected as delivered: the failure must win.
        first!.resolve(.delivered)
        first = nil
        #expect(statuses.withLock { $0 } == [.failed])
        #expect(metrics.errors.load(ordering: .relaxed) == 2, "the reject and the failed write")
        #expect(metrics.report().failure?.reason.contains("errno \(EIO)") == true)
        #expect(fileSystem.syncCounts.failed == 1)

        var second: Acknowledgements? = Acknowledgements([token()])
        rejections.reject(Array("bad again".utf8), topic: nil, reason: "does not parse", deadLetter: true)
        rejections.settle(second!)
        second!.resolve(.delivered)
        second = nil
        #expect(statuses.withLock { $0 } == [.failed, .delivered])
        #expect(metrics.report().failure == nil)
        #expect(fileSystem.durableSnapshot.contents(of: "/state/wrap/dead-letters.jsonl").map { !$0.isEmpty } == true)
    }

    /// A chunk of garbage costs one fsync, not one per line (100,000 rejected lines took 16 s one fsync at a
    /// time); and when that fsync fails, every line of the chunk is cut off the file and the chunk fails.
    @Test func theRejectsOfOneChunkAreMadeDurableByOneFsync() throws {
        let fileSystem = SimulatedFileSystem()
        _ = fileSystem.makeDirectory("/state", mode: 0o700)
        let metrics = ComponentMetrics()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let context = ComponentContext(
            id: "wrap", type: "json", role: .transform, logger: logger, metrics: metrics, dataDirectory: "/state")
        let path = "/state/wrap/dead-letters.jsonl"
        var rejections = Rejections(context: context, deadLetters: DeadLetterFile(path: path, fileSystem: fileSystem))
        let statuses = Mutex<[DeliveryStatus]>([])
        func chunk(_ rejects: Int) {
            var acknowledgements: Acknowledgements? = Acknowledgements([
                Acknowledgement { status in statuses.withLock { $0.append(status) } }
            ])
            for index in 0..<rejects {
                rejections.reject(Array("bad \(index)".utf8), topic: nil, reason: "does not parse", deadLetter: true)
            }
            // Nothing appended is durable before the chunk settles.
            #expect(rejections.deadLettered + rejections.writeFailures < rejections.rejected || rejects == 0)
            rejections.settle(acknowledgements!)
            acknowledgements!.resolve(.delivered)
            acknowledgements = nil
        }
        let durableLines = { fileSystem.durableSnapshot.contents(of: path).map { $0.split(separator: 0x0A).count } ?? 0 }

        let before = fileSystem.syncCounts.done
        chunk(500)
        #expect(statuses.withLock { $0 } == [.delivered])
        #expect(rejections.deadLettered == 500)
        // The file's data once, plus the directories made for it (created, then opened in): not 500 fsyncs.
        #expect(fileSystem.syncCounts.done - before <= 3)
        #expect(durableLines() == 500)

        fileSystem.failSyncs(times: 1) { $0.hasSuffix("dead-letters.jsonl") }
        chunk(3)
        #expect(statuses.withLock { $0 } == [.delivered, .failed])
        #expect(rejections.writeFailures == 3)
        #expect(rejections.deadLettered == 500)
        #expect(fileSystem.volatileSnapshot.contents(of: path).map { $0.split(separator: 0x0A).count } == 500)

        chunk(2)
        #expect(statuses.withLock { $0 } == [.delivered, .failed, .delivered])
        #expect(rejections.deadLettered == 502)
        #expect(durableLines() == 502)
    }

    /// The sink's deliveries wait for their dead letters off their own thread, and share fsyncs: tickets that one
    /// sync covered need no other. A failed sync fails every ticket it cut off, not only its caller's.
    @Test func ticketsShareASyncAndAFailedSyncFailsEveryLineItCut() async throws {
        let fileSystem = SimulatedFileSystem()
        _ = fileSystem.makeDirectory("/state", mode: 0o700)
        let path = "/state/cloud/dead-letters.jsonl"
        let file = DeadLetterFile(path: path, fileSystem: fileSystem)
        func append(_ text: String) throws -> DeadLetterFile.Ticket {
            try file.append(component: "cloud", topic: "/t", reason: text, retCode: 230, payload: Array(text.utf8))
        }
        let durableLines = { fileSystem.durableSnapshot.contents(of: path).map { $0.split(separator: 0x0A).count } ?? 0 }

        let tickets = try (0..<20).map { try append("letter \($0)") }
        let before = fileSystem.syncCounts.done
        try await withThrowingTaskGroup(of: Void.self) { group in
            for ticket in tickets { group.addTask { try await file.awaitDurable(ticket) } }
            try await group.waitForAll()
        }
        // One fsync of the file for the 20 (the directory syncs came with the first append).
        #expect(fileSystem.syncCounts.done - before == 1)
        #expect(durableLines() == 20)

        fileSystem.failSyncs(times: 1) { $0.hasSuffix(".jsonl") }
        let doomed = try (0..<3).map { try append("doomed \($0)") }
        var failures = 0
        for ticket in doomed.reversed() {
            do { try await file.awaitDurable(ticket) } catch { failures += 1 }
        }
        #expect(failures == 3, "a ticket whose line a failed sync cut off must not pass for durable")
        #expect(durableLines() == 20)

        // Tickets of the file before the failure stay durable; new lines go to a fresh descriptor.
        try await file.awaitDurable(tickets[0])
        let again = try append("again")
        try await file.awaitDurable(again)
        #expect(durableLines() == 21)
    }
}
