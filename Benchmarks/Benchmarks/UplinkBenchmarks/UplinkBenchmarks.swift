import Benchmark

// Each benchmark handles a fixed number of events per iteration and sets `scalingFactor` to that number, so the
// figures per iteration divide evenly into figures per event:
// - `.kilo` benchmarks: 1,000 events (lines, strings, parts, signatures) per iteration, on one core;
// - `.mega` benchmarks: 1,000,000 events per iteration through a small pipeline (producer task → channel → stage
//   → channel → consumer task), as the engine runs a stage (1,000 with UPLINK_BENCH_SMALL=1, see Support.swift).
// package-benchmark 1.38 prints figures per event by default (marked `*`, rounded to whole numbers: 0.004
// allocations per event shows as 0); `--scale --time-units nanoseconds` prints them per iteration, unrounded:
// divide by 1,000 or 1,000,000.
let benchmarks: @Sendable () -> Void = {
    channelBenchmarks()
    lineFramerBenchmarks()
    jsonEscapingBenchmarks()
    envelopeBenchmarks()
    batchBenchmarks()
    signerBenchmarks()
    expressionBenchmarks()
}

/// What every benchmark reports: time, events per second and allocations (counted by the malloc interposer, in
/// every thread of the process). Malloc counts are exact (`.count`), not rounded to thousands.
private var metrics: [BenchmarkMetric] { [.wallClock, .throughput, .mallocCountTotal] }

/// 1,000 events per iteration, on one core.
var kiloConfiguration: Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: metrics, units: [.mallocCountTotal: .count], warmupIterations: 3, scalingFactor: .kilo,
        maxDuration: .seconds(3), maxIterations: 10_000)
}

/// 1,000,000 events per iteration through a pipeline of tasks: a warm-up, then up to `maxIterations`. Also
/// reports the CPU time of all threads (the stage and the tasks around it use both cores).
func pipelineConfiguration(maxDuration: Duration = .seconds(8), maxIterations: Int = 12) -> Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: metrics + [.cpuTotal], units: [.mallocCountTotal: .count], warmupIterations: 1,
        scalingFactor: smallPipelines ? .kilo : .mega, maxDuration: maxDuration, maxIterations: maxIterations)
}
