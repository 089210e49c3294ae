import Benchmark
import UplinkCore
import UplinkPlugins

/// The envelopes: `thing_model` (property posts and event posts) and `shadow` (reported state) built from the
/// records `json` makes of bench/bench.py's sensor lines. The transforms' encoders are internal, so each one runs
/// as the engine runs it: built from its config, its `run` between two channels, 1,000,000 records per iteration
/// in chunks of 512 (a producer task, the transform's task, a consumer task). The figures therefore include the
/// two channel hand-overs per chunk (see the channel benchmark, about 0.03 allocations and a few ns per event),
/// and for thing_model its RequestID counter (a file write per reserved block, blocks doubling up to 64,000).
func envelopeBenchmarks() {
    let device = "product_sn: abcdefgh12345678, device_sn: device001"
    let stages: [(String, String)] = [
        ("thing_model property post", "{ type: thing_model, inputs: [wrap], \(device), time_field: time }"),
        (
            "thing_model event post",
            "{ type: thing_model, inputs: [wrap], \(device), kind: event, identifier: reading, time_field: time }"
        ),
    ]
    for (label, options) in stages {
        let transform = builtTransform("t", in: pipeline(transform: options), as: ThingModelTransform.self)
        let state = StateDirectory()
        Benchmark(
            "envelope: \(label), run over channels", configuration: pipelineConfiguration(),
            closure: { benchmark in try await expectOneMessagePerRecord(transform, dataDirectory: state.path) },
            setup: { state.make() }, teardown: { state.remove() })
    }

    let shadow = builtTransform(
        "t", in: pipeline(transform: "{ type: shadow, inputs: [wrap], \(device) }"), as: ShadowTransform.self)
    Benchmark("envelope: shadow update, run over channels", configuration: pipelineConfiguration()) { benchmark in
        try await expectOneMessagePerRecord(shadow, dataDirectory: "/nonexistent")
    }
}

private func expectOneMessagePerRecord<T: TransformStage>(_ transform: T, dataDirectory: String) async throws
where T.Input == Record {
    let delivered = try await drive(
        transform, events: Fixtures.sensorRecords, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration,
        dataDirectory: dataDirectory)
    precondition(delivered.events == eventsPerPipelineIteration, "\(delivered.events) messages")
}

/// `stdin → json (csv, the sensor columns) → t → stdout`, with `t` written in flow style; its input is `wrap`,
/// or `model` (a thing_model property transform after `wrap`) with `afterThingModel`. Only `t` is taken from it.
func pipeline(transform options: String, afterThingModel: Bool = false) -> String {
    let model =
        "  model: { type: thing_model, inputs: [wrap], product_sn: abcdefgh12345678, device_sn: device001,"
        + " time_field: time }\n"
    return """
        sources:
          in: { type: stdin }
        transforms:
          wrap: { type: json, inputs: [in], mode: csv, columns: [time:int, temperature:float, humidity:int, status] }
        \(afterThingModel ? model : "")  t: \(options)
        sinks:
          out: { type: stdout, inputs: [t] }
        """
}
