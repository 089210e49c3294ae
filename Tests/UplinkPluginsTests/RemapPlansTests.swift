import Logging
import Testing
import UplinkCore
@testable import UplinkPlugins

private func context() -> ComponentContext {
    ComponentContext(
        id: "t", type: "remap", role: .transform, logger: Logger(label: "t"), metrics: ComponentMetrics(),
        dataDirectory: "/nonexistent")
}

/// What `stage` makes of `records` in one chunk through its processor (plans), and by its operations applied by name
/// to each record alone (``RemapTransform/apply(to:failures:byteDelta:)``): kept records, the chunk's adjusted byte
/// count, and its measure by a walk.
private func bothWays(_ stage: RemapTransform, _ records: [Record]) -> (
    planned: [Record], byName: [Record], adjustedBytes: Int?, walkedBytes: Int
) {
    var chunk = EventChunk(records)
    _ = chunk.measureByteCount()
    let processor = stage.makeProcessor(context: context())
    let planned = processor.process(chunk)
    processor.finish()
    var failures = ExpressionFailures(policy: stage.onError, deadLetters: DeadLetterSettings(), context: context())
    var byName: [Record] = []
    for var record in records {
        var delta = 0
        if stage.apply(to: &record, failures: &failures, byteDelta: &delta) { byName.append(record) }
    }
    return (
        planned?.events ?? [], byName, planned?.measuredByteCount,
        planned.map { Record.totalByteCount(of: $0.events) } ?? 0
    )
}

/// Names that test the plans' edges: "\u{212A}" (the Kelvin sign) is "K" as a Swift string with other bytes, and a
/// name longer than 15 bytes is not stored inline (records built apart then hold different string objects for it).
private let names = ["a", "c", "t", "K", "\u{212A}", "a_name_longer_than_fifteen_bytes"]

/// Every sequence of 0 to 3 of `names` (duplicates and the same names in other orders included), as records; `t`
/// holds a string in every third record (so `.t * 2` fails there) and a number otherwise. With `padding`, each
/// record starts with that many other fields (past ``Fields``' index threshold, its changes keep an index).
private func everyShape(padding: Int = 0) -> [Record] {
    var shapes: [[String]] = [[]]
    var last: [[String]] = [[]]
    for _ in 1...3 {
        last = last.flatMap { shape in names.map { shape + [$0] } }
        shapes += last
    }
    return shapes.enumerated().map { index, shape in
        var fields = Fields()
        for pad in 0..<padding { fields.append("pad\(pad)", .int(Int64(pad))) }
        for (position, name) in shape.enumerated() {
            // Each record builds its own strings, as a parser would (a long name is then another object each time).
            let ownName = String(decoding: Array(name.utf8), as: UTF8.self)
            if name == "t" && index % 3 == 0 {
                fields.append(ownName, .string("not a number"))
            } else {
                fields.append(ownName, position % 2 == 0 ? .int(Int64(index)) : .string("v\(index)"))
            }
        }
        return Record(fields: fields, timestamp: Int64(index))
    }
}

@Suite struct RemapPlansTests {
    /// The plans must change every record exactly as the operations by name do: every shape of up to three fields
    /// over names with duplicates, canonically equal names and long names, records of different shapes interleaved
    /// (each shape comes back after others, so plans are reused, replaced and bypassed during a cooldown), with
    /// programs that set new and existing fields, rename onto existing names and duplicates, remove, and fail.
    @Test(arguments: [
        "set: { a: '.t * 2' }",
        "set: { b: '\"const\"', a: '.t * 2' }, rename: { a: c }",
        "rename: { c: a, t: K }, remove: [a]",
        "remove: [K], set: { K: '1', a_name_longer_than_fifteen_bytes: '.K + 1' }, rename: { a: t }",
        "on_error: keep, set: { n: '.t * 2', a: '.n + 1' }, rename: { n: c }, remove: [t]",
        "on_error: keep, rename: { a_name_longer_than_fifteen_bytes: a }, set: { c: '.t + 1', t: '.c' }, remove: [c]",
        "rename: { a: a }, set: { a: 'exists(.c)' }, remove: [a, a]",
    ])
    func plansChangeRecordsExactlyAsOperationsByName(program: String) throws {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: json }
              t: { type: remap, inputs: [wrap], \(program) }
            sinks:
              out: { type: stdout, inputs: [t] }
            """
        let stage = try builtTransform("t", in: yaml, as: RemapTransform.self)
        let shapes = everyShape()
        // In order (every record another shape: plans are built, dropped unused, and bypassed during cooldowns),
        // then shapes two by two, alternating (plans serve and are replaced), then wide records (an index of names)
        // the same way.
        var records = shapes
        for first in stride(from: 0, to: shapes.count - 1, by: 2) {
            let (a, b) = (shapes[first], shapes[first + 1])
            records += [a, b, a, b, a]
        }
        let wide = everyShape(padding: 17)
        for first in stride(from: 0, to: wide.count - 1, by: 6) {
            let (a, b) = (wide[first], wide[first + 1])
            records += [a, b, a, shapes[first], b, a]
        }
        // Many records must take a plan, or this would test the operations by name against themselves (a plan is
        // not made for some shapes: a rename onto a name the record has).
        var plans = RemapPlans()
        let takingPlans = records.count { plans.steps(for: $0.fields, operations: stage.operations) != nil }
        #expect(takingPlans > records.count / 4)
        let (planned, byName, adjustedBytes, walkedBytes) = bothWays(stage, records)
        #expect(planned.count == byName.count)
        for (index, (a, b)) in zip(planned, byName).enumerated() where a.fields.storage != b.fields.storage {
            Issue.record("record \(index): planned \(a.json), by name \(b.json)")
            break
        }
        #expect(adjustedBytes == walkedBytes)
        // Lookups by name in what the plans changed give what they give in the same fields indexed afresh.
        for record in planned {
            let fresh = Fields(record.fields.storage)
            for name in names + ["b", "n", "pad0", "pad16"] where record.fields[name] != fresh[name] {
                Issue.record("\(record.json): '\(name)' is \(String(describing: record.fields[name])), not \(String(describing: fresh[name]))")
            }
        }
    }

    @Test func aFieldMovedOrRenamedToAnExistingNameIsAnotherShape() throws {
        let stage = RemapTransform(operations: [.set("s", try Expression(#""x""#)), .rename(from: "a", to: "b")])
        let records = [
            Record(fields: ["a": .int(1), "b": .int(2)], timestamp: 0),
            Record(fields: ["b": .int(2), "a": .int(1)], timestamp: 0),  // the same names, moved
            Record(fields: ["a": .int(1), "c": .int(2)], timestamp: 0),  // rename onto a name it does not have
            Record(fields: ["a": .int(1), "b": .int(2)], timestamp: 0),
            Record(fields: ["a": .int(1), "c": .int(2)], timestamp: 0),
        ]
        let (planned, byName, adjustedBytes, walkedBytes) = bothWays(stage, records)
        #expect(planned.map(\.json) == [#"{"b":1,"s":"x"}"#, #"{"b":1,"s":"x"}"#, #"{"b":1,"c":2,"s":"x"}"#, #"{"b":1,"s":"x"}"#, #"{"b":1,"c":2,"s":"x"}"#])
        #expect(planned.map(\.json) == byName.map(\.json))
        #expect(adjustedBytes == walkedBytes)
    }

    /// Plans are kept per shape (at most ``RemapPlans/capacity``); one that never served a second record is dropped
    /// for a new one only after a cooldown, which doubles while shapes keep changing.
    @Test func shapesThatKeepChangingBuildPlansLessAndLessOften() throws {
        let operations: [RemapTransform.Operation] = [.rename(from: "a", to: "b")]
        var plans = RemapPlans()
        var built = 0
        for index in 0..<200 {
            let before = plans.shapes
            _ = plans.steps(for: ["a": .int(1), "f\(index)": .int(2)], operations: operations)
            if plans.shapes != before { built += 1 }
        }
        // 4 to fill the plans, then one build per cooldown of 1, 2, 4, 8, 16, 32, 64 misses.
        #expect(built <= RemapPlans.capacity + 8)
        #expect(plans.cooldown > 0)
        // A shape that keeps coming stays planned whatever else comes and goes.
        var steady = RemapPlans()
        for index in 0..<100 {
            #expect(steady.steps(for: ["a": .int(1), "b0": .int(2)], operations: operations)?.count == 1)
            _ = steady.steps(for: ["a": .int(1), "x\(index)": .int(2)], operations: operations)
        }
        #expect(zip(steady.shapes, steady.plans).contains { $0 == ["a", "b0"] && $1.served == 100 })
    }

    /// ``Fields``' changes by position keep the name index of wide records right: every lookup gives what a lookup
    /// in the same fields indexed afresh gives.
    @Test func changesByPositionKeepTheIndexOfWideRecords() {
        var names = (0..<20).map { "f\($0)" }
        names[7] = "dup"
        names[12] = "dup"
        var fields = Fields(names.enumerated().map { Fields.Field(name: $1, value: .int(Int64($0))) })
        func matchesFreshIndex() -> Bool {
            let fresh = Fields(fields.storage)
            return (fields.names + ["dup", "new", "f7", "f12", "gone"]).allSatisfy { fields[$0] == fresh[$0] }
        }
        #expect(fields.renameField(at: 7, to: "new") == 0)
        #expect(fields["dup"] == .int(12) && fields["new"] == .int(7))
        #expect(matchesFreshIndex())
        #expect(fields.renameField(at: 3, to: "dup") == 1)
        #expect(fields["dup"] == .int(3))
        #expect(matchesFreshIndex())
        #expect(fields.removeField(at: 12).name == "dup")  // not the first "dup"
        #expect(fields["dup"] == .int(3))
        #expect(matchesFreshIndex())
        #expect(fields.removeField(at: 3).name == "dup")
        #expect(fields["dup"] == nil)
        #expect(matchesFreshIndex())
        #expect(fields.replaceValue(at: 0, with: .string("x")) == .int(0))
        #expect(fields["f0"] == .string("x"))
        #expect(fields.hasNames(fields.names) && !fields.hasNames(Array(fields.names.reversed())))
    }
}
