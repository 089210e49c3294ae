import Foundation
import Testing
import UplinkCore

@testable import UplinkPlugins

/// A transform's dead letter is a final answer only once it is on disk: when it cannot be written, the chunk it
/// came from is not acknowledged (the source keeps it), and the failure is counted and reported to `/health`.
@Suite struct DeadLetterFailureTests {
    /// `json` with `on_error: dead_letter` whose dead-letter file cannot be created (its directory is a file:
    /// ENOTDIR, a real failure of the real file system).
    @Test func aChunkWhoseDeadLetterCannotBeWrittenIsNotAcknowledged() async throws {
        let directory = try temporaryDirectory()
        let blocker = directory + "/not-a-directory"
        FileManager.default.createFile(atPath: blocker, contents: Data())
        let transform = try builtTransform(
            "t",
            in: pipeline(json: "mode: csv, columns: [n:int, t:float], on_error: dead_letter, dead_letter_path: \(blocker)/dead.jsonl"),
            as: JSONTransform.self)
        let acks = AckCounter()
        var chunks: [EventChunk<RawEvent>]? = [
            // A good line and a bad one: the good one goes on, but the chunk must not be acknowledged.
            EventChunk(rawEvents(["1,20.5", "2,warm"]), acknowledgements: Acknowledgements([acks.token()])),
            // Only a bad line: nothing goes on, and the chunk must not be taken as dead-lettered.
            EventChunk(rawEvents(["3"]), acknowledgements: Acknowledgements([acks.token()])),
            // Only good lines: acknowledged as usual once delivered.
            EventChunk(rawEvents(["4,21.5"]), acknowledgements: Acknowledgements([acks.token()])),
        ]
        var result: TransformRun<Record>? = try await run(transform, chunks!, id: "wrap", dataDirectory: directory)
        chunks = nil
        #expect(result?.events.count == 2)
        // The sink delivers everything it got.
        for chunk in result?.chunks ?? [] { chunk.acknowledgements.resolve(.delivered) }
        #expect(result?.metrics.errors == 4, "2 rejects and 2 failed dead-letter writes")
        result = nil
        #expect(acks.deliveredCount == 1)
        #expect(acks.otherCount == 2)
    }

    @Test func theFailureIsReportedToHealthUntilADeadLetterIsWrittenAgain() throws {
        let directory = try temporaryDirectory()
        let blocker = directory + "/later-a-directory"
        FileManager.default.createFile(atPath: blocker, contents: Data())
        let metrics = ComponentMetrics()
        let context = ComponentContext(
            id: "wrap", type: "json", role: .transform, logger: SourceHarness.logger, metrics: metrics,
            dataDirectory: directory)
        var rejections = Rejections(context: context, deadLetters: DeadLetterFile(path: blocker + "/dead.jsonl"))
        rejections.reject(Array("x".utf8), topic: nil, reason: "bad", deadLetter: true)
        let failure = try #require(metrics.report().failure)
        #expect(failure.reason.contains(blocker + "/dead.jsonl") && failure.reason.contains("errno \(ENOTDIR)"))
        #expect(rejections.writeFailures == 1)
        // The operator fixes the disk: the next dead letter is written and the failure clears.
        try FileManager.default.removeItem(atPath: blocker)
        try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: false)
        rejections.reject(Array("y".utf8), topic: nil, reason: "bad", deadLetter: true)
        // Appended, not yet durable: it counts once the chunk settles (one fsync per chunk).
        #expect(rejections.deadLettered == 0)
        rejections.settle(Acknowledgements())
        #expect(metrics.report().failure == nil)
        #expect(rejections.deadLettered == 1)
        rejections.finish()
        #expect(try jsonLines(blocker + "/dead.jsonl").count == 1)
    }
}
