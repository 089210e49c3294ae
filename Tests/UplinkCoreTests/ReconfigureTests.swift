import Foundation
import Testing
import UplinkCore

/// Reloading a running pipeline in place: what did not change keeps running, what changed is drained and
/// replaced on the same edge, and no event is lost or duplicated on the way.
@Suite(.timeLimit(.minutes(1))) struct ReconfigureTests {
    /// Numbers of `source`'s events in `lines` (stripping any prefix before the source id).
    static func numbers(_ lines: [String], source: String) -> [Int] {
        lines.compactMap { line in
            guard let range = line.range(of: source + "-") else { return nil }
            return Int(line[range.upperBound...])
        }
    }

    static func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<2000 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
        #expect(condition())
    }

    /// Whether the last `count` of `lines` start with `prefix`: at least `count` lines of a reloaded component,
    /// since they all follow the old ones (which the tests check afterwards). One look, not a filter of the whole
    /// store at every poll: that grew quadratic with the store and took 209 s instead of 4 under AddressSanitizer.
    static func endsWith(_ count: Int, linesPrefixed prefix: String, _ lines: [String]) -> Bool {
        lines.count >= count && lines[lines.count - count].hasPrefix(prefix)
    }

    /// Every number from 0 up to the highest seen, exactly once and in order.
    static func expectContiguous(_ numbers: [Int], _ comment: Comment) {
        #expect(!numbers.isEmpty, comment)
        #expect(numbers == Array(0..<numbers.count), comment)
    }

    @Test func unchangedComponentsKeepRunningWhileASinkIsAddedAndAnotherRewired() async throws {
        let plugins = TestPlugins()
        let before = """
            sources:
              gen: { type: ticker }
            sinks:
              a: { type: collect, inputs: [gen] }
            """
        let pipeline = try plugins.pipeline(before)
        async let run: Void = pipeline.run()
        try await Self.waitUntil { plugins.store("a").count >= 200 }
        let sourceMetrics = pipeline.metrics["gen"]!

        let outcome = try await pipeline.reconfigure(
            to: plugins.topology(
                """
                sources:
                  gen: { type: ticker }
                transforms:
                  mark: { type: prefix, inputs: [gen], prefix: "new:" }
                sinks:
                  a: { type: collect, inputs: [mark] }
                  b: { type: collect, inputs: [gen] }
                """))
        guard case .applied(let summary) = outcome else {
            Issue.record("expected an in-place reload, got \(outcome)")
            return
        }
        #expect(summary.kept.sorted() == ["a", "gen"])
        #expect(summary.added.sorted() == ["b", "mark"])
        #expect(summary.replaced.isEmpty && summary.removed.isEmpty)
        try await Self.waitUntil {
            plugins.store("b").count >= 200 && Self.endsWith(200, linesPrefixed: "new:", plugins.store("a"))
        }
        pipeline.stop()
        try await run

        // The source and sink a were never restarted: one start each, the same counters.
        #expect(plugins.startCount("gen") == 1)
        #expect(plugins.startCount("a") == 1)
        #expect(pipeline.metrics["gen"] === sourceMetrics)
        let a = plugins.store("a")
        Self.expectContiguous(Self.numbers(a, source: "gen"), "sink a: every event once, in order, across the rewiring")
        // Once rewired through the new transform, nothing reaches a directly any more.
        let firstNew = a.firstIndex { $0.hasPrefix("new:") }!
        #expect(a[firstNew...].allSatisfy { $0.hasPrefix("new:") })
        // The added sink starts somewhere in the stream and misses nothing from there on.
        let b = Self.numbers(plugins.store("b"), source: "gen")
        #expect(b == Array(b.first!..<(b.first! + b.count)))
    }

    @Test func changedComponentsAreReplacedOnTheSameEdgeWithoutLoss() async throws {
        let plugins = TestPlugins()
        func config(prefix: String, tag: String) -> String {
            """
            sources:
              gen: { type: ticker, chunk: 7, interval_ms: 1 }
            transforms:
              mark: { type: prefix, inputs: [gen], prefix: "\(prefix)" }
            sinks:
              out: { type: collect, inputs: [mark], tag: \(tag), buffer: { max_events: 20 } }
            """
        }
        let pipeline = try plugins.pipeline(config(prefix: "old:", tag: "one"))
        async let run: Void = pipeline.run()
        try await Self.waitUntil { plugins.store("out").count >= 300 }

        let outcome = try await pipeline.reconfigure(to: plugins.topology(config(prefix: "new:", tag: "two")))
        guard case .applied(let summary) = outcome else {
            Issue.record("expected an in-place reload, got \(outcome)")
            return
        }
        #expect(summary.kept == ["gen"])
        #expect(summary.replaced.sorted() == ["mark", "out"])
        try await Self.waitUntil { Self.endsWith(300, linesPrefixed: "new:", plugins.store("out")) }
        pipeline.stop()
        try await run

        #expect(plugins.startCount("gen") == 1)
        #expect(plugins.startCount("mark") == 2)
        #expect(plugins.startCount("out") == 2)
        let out = plugins.store("out")
        Self.expectContiguous(Self.numbers(out, source: "gen"), "every event once, in order, across the swap")
        // The old transform drained before the new one started: no old prefix after the first new one.
        let firstNew = out.firstIndex { $0.hasPrefix("new:") }!
        #expect(out[..<firstNew].allSatisfy { $0.hasPrefix("old:") })
        #expect(out[firstNew...].allSatisfy { $0.hasPrefix("new:") })
    }

    @Test func aReplacedSourceResumesAfterItsPredecessorStoppedAndARemovedOneStops() async throws {
        let plugins = TestPlugins()
        let pipeline = try plugins.pipeline(
            """
            sources:
              gen: { type: ticker, chunk: 5 }
              extra: { type: ticker, chunk: 5 }
            sinks:
              out: { type: collect, inputs: [gen, extra] }
            """)
        async let run: Void = pipeline.run()
        try await Self.waitUntil { plugins.store("out").count >= 200 }
        let outcome = try await pipeline.reconfigure(
            to: plugins.topology(
                """
                sources:
                  gen: { type: ticker, chunk: 3 }
                sinks:
                  out: { type: collect, inputs: [gen] }
                """))
        guard case .applied(let summary) = outcome else {
            Issue.record("expected an in-place reload, got \(outcome)")
            return
        }
        #expect(summary.replaced == ["gen"])
        #expect(summary.removed == ["extra"])
        #expect(summary.kept == ["out"])
        let extraAfterReload = Self.numbers(plugins.store("out"), source: "extra").count
        try await Self.waitUntil { plugins.store("out").count >= extraAfterReload + 400 }
        pipeline.stop()
        try await run

        #expect(plugins.startCount("gen") == 2)
        #expect(plugins.startCount("out") == 1)
        // The removed source stopped at the reload (no counter restarts, no more events from it).
        let extra = Self.numbers(plugins.store("out"), source: "extra")
        #expect(extra.count == extraAfterReload)
        Self.expectContiguous(extra, "the removed source's events before it stopped")
        // The ticker restarts its numbering: the new instance sends 0, 1, 2... after the old one's last.
        let gen = Self.numbers(plugins.store("out"), source: "gen")
        let restart = gen.indices.dropFirst().first { gen[$0] == 0 }!
        Self.expectContiguous(Array(gen[..<restart]), "the old instance's events")
        Self.expectContiguous(Array(gen[restart...]), "the new instance's events")
    }

    @Test func aSinkWhoseInputChangesKindDrainsItsOldEdgeBeforeItsSuccessorStarts() async throws {
        let plugins = TestPlugins()
        func config(buffer: Int) -> String {
            """
            sources:
              gen: { type: ticker, chunk: 7, interval_ms: 1 }
            sinks:
              out: { type: collect, inputs: [gen], buffer: { max_events: \(buffer) } }
            """
        }
        let pipeline = try plugins.pipeline(config(buffer: 50))
        async let run: Void = pipeline.run()
        try await Self.waitUntil { plugins.store("out").count >= 200 }
        guard case .applied(let summary) = try await pipeline.reconfigure(to: plugins.topology(config(buffer: 9))) else {
            Issue.record("a memory buffer change applies in place")
            return
        }
        #expect(summary.replaced == ["out"] && summary.kept == ["gen"])
        let count = plugins.store("out").count
        try await Self.waitUntil { plugins.store("out").count >= count + 200 }
        pipeline.stop()
        try await run
        #expect(plugins.startCount("gen") == 1 && plugins.startCount("out") == 2)
        Self.expectContiguous(Self.numbers(plugins.store("out"), source: "gen"), "nothing lost or repeated across edges")
    }

    @Test func changesThatCannotBeAppliedInPlaceSayWhyAndChangeNothing() async throws {
        let plugins = TestPlugins()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-reconfigure-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let before = """
            data_dir: \(directory)
            sources:
              gen: { type: ticker }
            sinks:
              out: { type: collect, inputs: [gen] }
            """
        let pipeline = try plugins.pipeline(before)
        async let run: Void = pipeline.run()
        try await Self.waitUntil { plugins.store("out").count >= 50 }

        let toDisk = try await pipeline.reconfigure(
            to: plugins.topology(before.replacingOccurrences(of: "inputs: [gen] }", with: "inputs: [gen], buffer: { type: disk } }")))
        guard case .restartRequired(let why) = toDisk else {
            Issue.record("a disk buffer change needs a restart, got \(toDisk)")
            return
        }
        #expect(why.contains("'out'") && why.contains("disk buffer"))
        let globalChange = try await pipeline.reconfigure(to: plugins.topology("shutdown_timeout: 7s\n" + before))
        guard case .restartRequired(let globalWhy) = globalChange else {
            Issue.record("a global change needs a restart, got \(globalChange)")
            return
        }
        #expect(globalWhy.contains("global settings"))
        // Identical configuration: everything kept.
        guard case .applied(let same) = try await pipeline.reconfigure(to: plugins.topology(before)) else {
            Issue.record("an identical configuration applies in place")
            return
        }
        #expect(same.kept.sorted() == ["gen", "out"])
        let count = plugins.store("out").count
        try await Self.waitUntil { plugins.store("out").count >= count + 50 }
        pipeline.stop()
        try await run
        #expect(plugins.startCount("gen") == 1 && plugins.startCount("out") == 1)
        Self.expectContiguous(Self.numbers(plugins.store("out"), source: "gen"), "nothing lost or repeated")
    }

    @Test func aStopDuringAReloadStillDrainsEverythingAndEnds() async throws {
        for round in 0..<5 {
            let plugins = TestPlugins()
            func config(_ tag: String) -> String {
                """
                sources:
                  gen: { type: ticker, chunk: 7, interval_ms: 1 }
                transforms:
                  mark: { type: prefix, inputs: [gen], prefix: "\(tag):" }
                sinks:
                  out: { type: collect, inputs: [mark], tag: \(tag), buffer: { max_events: 10 } }
                """
            }
            let pipeline = try plugins.pipeline(config("a"))
            async let run: Void = pipeline.run()
            try await Self.waitUntil { plugins.store("out").count >= 50 }
            let next = try plugins.topology(config("b"))
            async let reload = pipeline.reconfigure(to: next)
            // Stop at slightly different moments of the swap.
            try await Task.sleep(for: .microseconds(200 * round))
            pipeline.stop()
            _ = try await reload
            try await run
            let numbers = Self.numbers(plugins.store("out"), source: "gen")
            Self.expectContiguous(numbers, "round \(round): everything the source sent arrives once")
        }
    }

    @Test func fingerprintsIgnoreLayoutAndInputsButNotQuoting() throws {
        let plugins = TestPlugins()
        let flow = try plugins.topology(
            """
            sources:
              gen: { type: ticker, chunk: 5, interval_ms: 3 }
            sinks:
              out: { type: collect, inputs: [gen], tag: x }
            """)
        let block = try plugins.topology(
            """
            sources:
              gen:
                interval_ms: 3
                type: ticker
                chunk: 5
              other: { type: ticker }
            sinks:
              out:
                tag: x
                type: collect
                inputs: [gen, other]
            """)
        #expect(flow.node("gen")!.fingerprint == block.node("gen")!.fingerprint)
        #expect(flow.node("out")!.fingerprint == block.node("out")!.fingerprint, "inputs and layout do not count")
        let quoted = try plugins.topology(
            """
            sources:
              gen: { type: ticker, chunk: "5", interval_ms: 3 }
            sinks:
              out: { type: collect, inputs: [gen], tag: x }
            """)
        #expect(flow.node("gen")!.fingerprint != quoted.node("gen")!.fingerprint, "a quoted 5 is a string")
        #expect(flow.globalFingerprint == block.globalFingerprint)
    }
}
