import Benchmark
import UplinkCore

/// `LineFramer` in newline mode over 1,000 lines of exactly 100 bytes (100,000 bytes) per iteration: the whole
/// buffer at once, and the same bytes as the reads of a source (64 KiB and 4 KiB), where a line cut by the end of
/// a read is carried to the next one.
func lineFramerBenchmarks() {
    let buffer = Fixtures.lines(1000)

    Benchmark("framing: LineFramer, 100-byte lines, one 100 KB buffer", configuration: kiloConfiguration) { benchmark in
        var framer = LineFramer()
        frame(buffer, with: &framer, expecting: 1000)
    }

    for readSize in [65_536, 4096] {
        let reads = stride(from: 0, to: buffer.count, by: readSize).map {
            Array(buffer[$0..<min($0 + readSize, buffer.count)])
        }
        Benchmark(
            "framing: LineFramer, 100-byte lines, \(readSize / 1024) KiB reads", configuration: kiloConfiguration
        ) { benchmark in
            var framer = LineFramer()
            var frames = 0
            for read in reads { frames += frameCount(read, with: &framer) }
            precondition(frames == 1000)
        }
    }
}

private func frame(_ buffer: [UInt8], with framer: inout LineFramer, expecting: Int) {
    precondition(frameCount(buffer, with: &framer) == expecting)
}

private func frameCount(_ buffer: [UInt8], with framer: inout LineFramer) -> Int {
    var frames = 0
    var bytes = 0
    framer.frames(in: buffer) { frame in
        frames += 1
        bytes &+= frame.bytes.count
    }
    blackHole(bytes)
    return frames
}
