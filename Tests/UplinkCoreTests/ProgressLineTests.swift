import Foundation
import Testing
import UplinkCore

@Suite(.serialized) struct ProgressLineTests {
    @Test(arguments: [
        (5 << 20, 10 << 20, 2, ProgressLine.Unit.bytes, "backlog: 5.0MiB / 10.0MiB (50%), 2.5MiB/s, ETA 2s"),
        (30, 100, 10, .events, "replay: 30 / 100 (30%), 3/s, ETA 24s"),
        (100, 100, 4, .events, "replay: 100 / 100 (100%), 25/s"),
        (12, nil, 4, .events, "replay: 12, 3/s"),
        (1, 4000, 1, .events, "replay: 1 / 4000 (0%), 1/s, ETA 1h06m"),
    ] as [(Int, Int?, Int, ProgressLine.Unit, String)])
    func format(_ done: Int, _ total: Int?, _ seconds: Int, _ unit: ProgressLine.Unit, _ expected: String) {
        let label = unit == .bytes ? "backlog" : "replay"
        #expect(ProgressLine.format(label: label, done: done, total: total, elapsed: .seconds(seconds), unit: unit) == expected)
    }

    @Test func quietWhenTheOutputIsNotATerminal() throws {
        let pipe = Pipe()
        let progress = ProgressLine(label: "x", total: 10, unit: .events, fd: pipe.fileHandleForWriting.fileDescriptor)
        #expect(!progress.isEnabled)
        progress.update(done: 5)
        progress.finish()
        try pipe.fileHandleForWriting.close()
        #expect(pipe.fileHandleForReading.readDataToEndOfFile().isEmpty)
    }

    @Test func redrawsInPlaceAndLogsStepAside() throws {
        let pipe = Pipe()
        let fd = pipe.fileHandleForWriting.fileDescriptor
        let progress = ProgressLine(label: "x", total: 10, unit: .events, fd: fd, forceEnabled: true)
        #expect(progress.isEnabled)
        // Only one line at a time.
        #expect(!ProgressLine(label: "y", total: 1, unit: .events, fd: fd, forceEnabled: true).isEnabled)
        progress.update(done: 5)
        ProgressLine.stepAside { _ = Array("a log line\n".utf8).withUnsafeBytes { FileIO.writeAll(fd, $0) } }
        progress.update(done: 6)  // within 200 ms of the last draw: not drawn
        progress.finish()
        progress.finish()
        // The slot is free again.
        let next = ProgressLine(label: "z", total: 1, unit: .events, fd: fd, forceEnabled: true)
        #expect(next.isEnabled)
        next.finish()
        try pipe.fileHandleForWriting.close()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let clear = "\r\u{1B}[K"
        #expect(text.hasPrefix(clear + "x: 5 / 10 (50%)"))
        #expect(text.contains(clear + "a log line\nx: 5 / 10 (50%)"))
        #expect(text.components(separatedBy: "x: 6 / 10 (60%)").count == 2, "finish draws the last state once")
        #expect(text.hasSuffix("z: 0 / 1 (0%), 0/s\n"))
    }
}
