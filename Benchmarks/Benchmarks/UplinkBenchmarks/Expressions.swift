import Benchmark
import UplinkCore
import UplinkPlugins

/// The expression language and the edge stages built on it:
/// - a compiled condition evaluated on 1,000 sensor records per iteration: a numeric one (whose malloc count is
///   the claim "a numeric condition allocates nothing per record"), and a string comparison;
/// - `json` (csv, the sensor columns) alone, then `filter` and `remap` on what it makes, 1,000,000 events per
///   iteration each, run as the engine runs a stage: the CPU of a trivial `filter` plus `remap` per record beside
///   `json`'s own (issue 18's target: at most 25%); and the three chained, `filter` and `remap` on `json`'s fresh
///   records as in a pipeline (the single-stage runs feed shared fixtures, which an in-place change must copy).
func expressionBenchmarks() {
    let records = Fixtures.sensorRecords
    let numeric = try! Expression(condition: ".temperature > -40 && .temperature < 125")
    Benchmark("expressions: .temperature > -40 && .temperature < 125, 1,000 records", configuration: kiloConfiguration) {
        benchmark in
        var passed = 0
        for index in 0..<1000 where try numeric.test(records[index % records.count].fields) { passed += 1 }
        precondition(passed == 1000)
        blackHole(passed)
    }
    let text = try! Expression(condition: #".status == "ok" || starts_with(.status, "w")"#)
    Benchmark("expressions: .status == \"ok\" || starts_with(…), 1,000 records", configuration: kiloConfiguration) {
        benchmark in
        var passed = 0
        for index in 0..<1000 where try text.test(records[index % records.count].fields) { passed += 1 }
        precondition(passed == 1000)
        blackHole(passed)
    }
    let arithmetic = try! Expression("round(.temperature * 9 / 5 + 32, 1)")
    Benchmark("expressions: round(.temperature * 9 / 5 + 32, 1), 1,000 records", configuration: kiloConfiguration) {
        benchmark in
        var sum = 0.0
        for index in 0..<1000 {
            if case .double(let value) = try arithmetic.evaluate(records[index % records.count].fields) { sum += value }
        }
        blackHole(sum)
    }

    // The sensor lines `json` parses: `time,temperature,humidity,status`, slices of one buffer as a source reads.
    let csv: [UInt8] = Array(
        (0..<Fixtures.chunkSize).map { index in
            "\(1_700_000_000_000 + index),\(20 + Double(index % 150) / 10),\(40 + index % 30),\(index % 7 == 0 ? "warn" : "ok")\n"
        }.joined().utf8)
    var lines: [RawEvent] = []
    var start = 0
    for (offset, byte) in csv.enumerated() where byte == 0x0A {
        lines.append(RawEvent(bytes: csv[start..<offset], origin: Fixtures.origin, timestamp: 1_700_000_000_000))
        start = offset + 1
    }
    let json = builtTransform(
        "wrap", in: pipeline(transform: "{ type: batch, inputs: [wrap] }"), as: JSONTransform.self)
    Benchmark("edge: json (csv, 4 sensor columns) alone", configuration: pipelineConfiguration()) { benchmark in
        let delivered = try await drive(
            json, events: lines, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration, dataDirectory: "/nonexistent")
        precondition(delivered.events == eventsPerPipelineIteration)
    }
    let filter = builtTransform(
        "t", in: pipeline(transform: "{ type: filter, inputs: [wrap], condition: '.temperature > -40 && .temperature < 125' }"),
        as: FilterTransform<Record>.self)
    Benchmark("edge: filter .temperature > -40 && .temperature < 125", configuration: pipelineConfiguration()) { benchmark in
        let delivered = try await drive(
            filter, events: records, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration, dataDirectory: "/nonexistent")
        precondition(delivered.events == eventsPerPipelineIteration)
    }
    let remap = builtTransform(
        "t", in: pipeline(transform: "{ type: remap, inputs: [wrap], set: { site: '\"plant-4\"' }, rename: { humidity: hum } }"),
        as: RemapTransform.self)
    Benchmark("edge: remap set a constant, rename a field", configuration: pipelineConfiguration()) { benchmark in
        let delivered = try await drive(
            remap, events: records, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration, dataDirectory: "/nonexistent")
        precondition(delivered.events == eventsPerPipelineIteration)
    }
    // The three as a pipeline runs them: `filter` and `remap` on the fresh records `json` makes. Its CPU less
    // `json` alone's is what the two stages add per record (the target: at most 25% of `json`'s).
    Benchmark("edge: json -> filter -> remap (the two above, on json's own records)", configuration: pipelineConfiguration()) {
        benchmark in
        let delivered = try await drive(json, filter, remap, events: lines, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration)
        precondition(delivered.events == eventsPerPipelineIteration)
    }
    // The same, fused as the runtime runs it (`filter` and `remap` in `json`'s task, InlineEdge), without the tasks
    // and channels around the chain: "fused chain" less "json fused alone" is the two stages' own work per record,
    // against `json`'s own.
    Benchmark("edge: json alone, its processor in the calling task", configuration: pipelineConfiguration()) { benchmark in
        let delivered = try processFused(json, events: lines, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration)
        precondition(delivered == eventsPerPipelineIteration)
    }
    Benchmark("edge: json -> filter -> remap fused, in the calling task", configuration: pipelineConfiguration()) { benchmark in
        let delivered = try processFused(
            json, filter, remap, events: lines, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration)
        precondition(delivered == eventsPerPipelineIteration)
    }
    // bench/bench.py's csv-json-filter-remap: `remap` computes a field instead of setting a constant and renaming.
    let units = builtTransform(
        "t", in: pipeline(transform: "{ type: remap, inputs: [wrap], set: { temp_f: 'round(.temperature * 9 / 5 + 32, 1)' } }"),
        as: RemapTransform.self)
    Benchmark("edge: json -> filter -> remap round(.temperature * 9 / 5 + 32, 1) fused", configuration: pipelineConfiguration()) {
        benchmark in
        let delivered = try processFused(
            json, filter, units, events: lines, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration)
        precondition(delivered == eventsPerPipelineIteration)
    }
}
