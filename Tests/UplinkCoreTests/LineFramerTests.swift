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
}
