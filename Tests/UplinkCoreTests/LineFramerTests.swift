import Testing
import UplinkCore

@Suite struct LineFramerTests {
    private func frames(_ pieces: [String], mode: LineFramer.Mode = .newline, max: Int = 1 << 20, flush: Bool = true) -> [String] {
        var framer = LineFramer(mode: mode, maxFrameBytes: max)
        var result: [String] = []
        for piece in pieces {
            framer.frames(in: Array(piece.utf8)) { result.append(String(decoding: $0.bytes, as: UTF8.self) + ($0.truncated ? "~" : "")) }
        }
        if flush { framer.flush { result.append(String(decoding: $0.bytes, as: UTF8.self)) } }
        return result
    }

    @Test func splitsLinesAcrossReads() {
        #expect(frames(["a\nbb", "b\r\nc", "c\n", "tail"]) == ["a", "bbb", "cc", "tail"])
        #expect(frames(["a\n\nb\n"]) == ["a", "", "b"])
    }

    @Test func customDelimiters() {
        #expect(frames(["a|b|", "c|"], mode: .delimiter(Array("|".utf8))) == ["a", "b", "c"])
        #expect(frames(["a\r", "\nb\r\n"], mode: .delimiter(Array("\r\n".utf8))) == ["a", "b"])
    }

    @Test func fixedLengthFrames() {
        #expect(frames(["abcd", "efg", "h"], mode: .fixedLength(3), flush: false) == ["abc", "def"])
        #expect(frames(["ab", "cdefgh", "i"], mode: .fixedLength(3), flush: false) == ["abc", "def", "ghi"])
    }

    @Test func overlongLinesAreCutAndTheRestDiscarded() {
        var framer = LineFramer(maxFrameBytes: 4)
        var result: [String] = []
        framer.frames(in: Array("abcdefgh\nij\n".utf8)) { result.append(String(decoding: $0.bytes, as: UTF8.self) + ($0.truncated ? "~" : "")) }
        #expect(result == ["abcd~", "ij"])
        #expect(framer.discardedBytes == 4)
        // A long line arriving in pieces is cut once, without buffering it whole.
        result = []
        framer.frames(in: Array("123".utf8)) { result.append(String(decoding: $0.bytes, as: UTF8.self)) }
        framer.frames(in: Array("4567".utf8)) { result.append(String(decoding: $0.bytes, as: UTF8.self)) }
        framer.frames(in: Array("89\nok\n".utf8)) { result.append(String(decoding: $0.bytes, as: UTF8.self)) }
        #expect(result == ["1234", "ok"])
        #expect(framer.pendingByteCount == 0)
    }

    @Test func framesShareTheReadBuffer() {
        var framer = LineFramer()
        let buffer = Array("one\ntwo\n".utf8)
        var starts: [Int] = []
        framer.frames(in: buffer) { starts.append($0.start) }
        #expect(starts == [0, 4])
    }

    /// Frames (`~` marks a truncated one, flush included) and the bytes discarded, for `reads` in that order.
    private func framed(
        _ reads: [String], mode: LineFramer.Mode, max: Int, policy: LineFramer.LongFramePolicy
    ) -> (frames: [String], discarded: Int) {
        var framer = LineFramer(mode: mode, maxFrameBytes: max, longFrames: policy)
        var result: [String] = []
        let record = { (frame: LineFramer.Frame) in
            result.append(String(decoding: frame.bytes, as: UTF8.self) + (frame.truncated ? "~" : ""))
        }
        for read in reads { framer.frames(in: Array(read.utf8), record) }
        framer.flush(record)
        return (result, framer.discardedBytes)
    }

    @Test func multiByteDelimiterDiscardsTheTailOfALongFrame() {
        // Fuzz/Regressions/lineframer/multibyte-delimiter-tail-of-long-frame: the tail came out as a frame.
        let result = framed(["abcdefgh", "ij\r\nok\r\n"], mode: .delimiter(Array("\r\n".utf8)), max: 4, policy: .truncate)
        #expect(result.frames == ["abcd~", "ok"])
        #expect(result.discarded == 6)
        // The delimiter ending the discarded frame may itself be split by a read boundary.
        let split = framed(["abcdefgh\r", "\nok\r\n"], mode: .delimiter(Array("\r\n".utf8)), max: 4, policy: .truncate)
        #expect(split.frames == ["abcd~", "ok"])
        #expect(split.discarded == 4)
    }

    @Test func multiByteDelimiterLastFrameOverTheMaximumIsCutAtFlush() {
        // Fuzz/Regressions/lineframer/multibyte-delimiter-flush-over-max: flush emitted 5 bytes, unflagged.
        let truncated = framed(["abcde"], mode: .delimiter(Array("\r\n".utf8)), max: 4, policy: .truncate)
        #expect(truncated.frames == ["abcd~"])
        #expect(truncated.discarded == 1)
        let split = framed(["abcde"], mode: .delimiter(Array("\r\n".utf8)), max: 4, policy: .split)
        #expect(split.frames == ["abcd~", "e~"])
        #expect(split.discarded == 0)
        // A fixed-length frame's length is the mode's: the maximum does not cut the last one.
        #expect(framed(["abcdefgh"], mode: .fixedLength(6), max: 1, policy: .truncate).frames == ["abcdef", "gh"])
    }

    @Test func crlfSplitBetweenCarriageReturnAndNewlineFramesAsOneRead() {
        // Fuzz/Regressions/lineframer/crlf-split-after-cr: a line of exactly the maximum was flagged truncated.
        for policy in LineFramer.LongFramePolicy.allCases {
            let result = framed(["ab\r", "\nab\r\n"], mode: .newline, max: 2, policy: policy)
            #expect(result.frames == ["ab", "ab"])
            #expect(result.discarded == 0)
        }
        // Discarding the rest of a long line does not count its `\r\n`, wherever the reads fall.
        let long = framed(["abcd\r", "\nok\n"], mode: .newline, max: 2, policy: .truncate)
        #expect(long.frames == ["ab~", "ok"])
        #expect(long.discarded == 2)
    }

    @Test(arguments: [LineFramer.LongFramePolicy.truncate, .split])
    func framingDoesNotDependOnWhereReadsFall(policy: LineFramer.LongFramePolicy) {
        let cases: [(String, LineFramer.Mode)] = [
            ("ab\r\nabc\r\nabcdefg\r\r\n\r\nx\ry\r\nabcd\r", .newline),
            ("abEN\r\nabcdefgEN\r\nEENDxEND\r\nabcdeE", .delimiter(Array("\r\n".utf8))),
            ("abENDabcdefENENDENDabcdEENabcdefgE", .delimiter(Array("END".utf8))),
        ]
        for (stream, mode) in cases {
            for max in 1...5 {
                let whole = framed([stream], mode: mode, max: max, policy: policy)
                let bytes = Array(stream.utf8)
                for first in 1..<bytes.count {
                    for second in first..<bytes.count {
                        let reads = [bytes[..<first], bytes[first..<second], bytes[second...]].map {
                            String(decoding: $0, as: UTF8.self)
                        }
                        let result = framed(reads, mode: mode, max: max, policy: policy)
                        #expect(result.frames == whole.frames, "\(mode) max \(max) reads \(reads)")
                        #expect(result.discarded == whole.discarded, "\(mode) max \(max) reads \(reads)")
                    }
                }
            }
        }
    }
}
