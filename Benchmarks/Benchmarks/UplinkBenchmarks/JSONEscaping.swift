import Benchmark
import UplinkCore

/// `JSONWriter` string escaping, 1,000 strings per iteration into a buffer reserved before the measurement starts
/// (as the transforms reuse theirs): Swift strings (`appendString`, field names and string values) and byte slices
/// (`appendStringBytes`, raw lines), each with nothing to escape and with characters to escape.
func jsonEscapingBenchmarks() {
    // A 99-byte line of plain ASCII, as bench/bench.py writes, and one with quotes, a backslash, a tab, control
    // characters and multi-byte UTF-8 (which is validated but not escaped).
    let plain = String(decoding: Fixtures.line(42), as: UTF8.self)
    let escaped =
        "{\"level\":\"warn\",\"msg\":\"C:\\temp\\x \\\"quoted\\\"\ttab"
        + "\u{1}\u{7f} température 温度 🚀 \r\nend\""
    let cases: [(String, [String])] = [
        ("99 B plain ASCII line", Array(repeating: plain, count: 1000)),
        ("short field names", (0..<1000).map { ["temperature", "humidity", "status", "time"][$0 % 4] }),
        ("\(escaped.utf8.count) B with characters to escape", Array(repeating: escaped, count: 1000)),
    ]
    for (label, strings) in cases {
        Benchmark("json escaping: appendString, \(label)", configuration: kiloConfiguration) { benchmark in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(256 * 1000)
            benchmark.startMeasurement()
            for string in strings { JSONWriter.appendString(string, to: &buffer) }
            benchmark.stopMeasurement()
            blackHole(buffer)
        }
    }
    let byteCases: [(String, [UInt8])] = [
        ("99 B plain ASCII line", Fixtures.line(42)),
        ("\(escaped.utf8.count) B with characters to escape", Array(escaped.utf8)),
    ]
    for (label, bytes) in byteCases {
        // Slices of a read buffer, as a raw event carries them.
        let slices = Array(repeating: bytes[...], count: 1000)
        Benchmark("json escaping: appendStringBytes, \(label)", configuration: kiloConfiguration) { benchmark in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(256 * 1000)
            benchmark.startMeasurement()
            for slice in slices { JSONWriter.appendStringBytes(slice, to: &buffer) }
            benchmark.stopMeasurement()
            blackHole(buffer)
        }
    }
}
