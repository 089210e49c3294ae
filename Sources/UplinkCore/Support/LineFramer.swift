/// Splits a byte stream into frames: lines ending in `\n` (a preceding `\r` is dropped), a custom delimiter,
/// or fixed-length frames. Frames are slices of the caller's buffer, so framing allocates nothing per frame.
///
/// A frame longer than `maxFrameBytes` is cut at that length and flagged as truncated; with
/// ``LongFramePolicy/truncate`` the rest of it up to the next delimiter is discarded and counted, with
/// ``LongFramePolicy/split`` it follows as further pieces, each flagged. Either way one runaway line cannot grow
/// memory without bound.
public struct LineFramer: Sendable {
    public enum Mode: Sendable, Equatable {
        case newline
        case delimiter([UInt8])
        case fixedLength(Int)
    }

    /// What happens to a frame longer than `maxFrameBytes`.
    public enum LongFramePolicy: String, Sendable, CaseIterable {
        /// Keep its first `maxFrameBytes`, flagged as truncated; the rest is discarded and counted.
        case truncate
        /// Cut it into pieces of at most `maxFrameBytes`, every piece flagged as truncated; nothing is lost.
        case split
    }

    public let mode: Mode
    public let maxFrameBytes: Int
    public let longFrames: LongFramePolicy
    /// Bytes of an unfinished frame carried from the previous buffer.
    private var pending: [UInt8] = []
    /// True while discarding the remainder of an over-long frame.
    private var discarding = false
    /// Bytes thrown away from over-long frames, for metrics.
    public private(set) var discardedBytes = 0
    /// With `split`: the pending bytes continue a frame already cut, so its last piece is flagged too.
    private var continuing = false
    /// Newline mode, while discarding: the last byte seen was a `\r`, not counted yet. A `\n` right after it makes
    /// it part of the line end, which is never counted as discarded, wherever the reads fall.
    private var heldCarriageReturn = false

    public init(mode: Mode = .newline, maxFrameBytes: Int = 1 << 20, longFrames: LongFramePolicy = .truncate) {
        self.mode = mode
        self.maxFrameBytes = max(1, maxFrameBytes)
        self.longFrames = longFrames
    }

    /// Bytes buffered waiting for their delimiter.
    public var pendingByteCount: Int { pending.count }

    public struct Frame: Sendable {
        public var bytes: ArraySlice<UInt8>
        /// Offset of the frame's first byte relative to the start of `buffer` passed to `frames(in:)`;
        /// negative when the frame began in an earlier buffer.
        public var start: Int
        public var truncated: Bool
    }

    /// Splits `buffer` (the next bytes of the stream), calling `emit` for each complete frame in order.
    public mutating func frames(in buffer: [UInt8], _ emit: (Frame) -> Void) {
        switch mode {
        case .fixedLength(let length):
            fixedFrames(buffer, length: length, emit)
        case .newline:
            delimited(buffer, delimiter: 0x0A, stripCarriageReturn: true, emit)
        case .delimiter(let delimiter) where delimiter.count == 1:
            delimited(buffer, delimiter: delimiter[0], stripCarriageReturn: false, emit)
        case .delimiter(let delimiter):
            multiByteDelimited(buffer, delimiter: delimiter, emit)
        }
    }

    /// Emits what is pending as a final frame (end of stream, or a flush timeout for a last line without
    /// newline).
    public mutating func flush(_ emit: (Frame) -> Void) {
        if discarding {
            // With a multi-byte delimiter the last bytes of a discarded frame are kept back: count them now.
            discardedBytes += pending.count
            discarding = false
            heldCarriageReturn = false
            pending.removeAll()
            return
        }
        guard !pending.isEmpty else { return }
        var frame = pending[...]
        if mode == .newline, frame.last == 0x0D { frame = frame.dropLast() }
        let start = -pending.count
        // With a multi-byte delimiter, pending may hold up to `maxFrameBytes + delimiter.count` bytes (the end of a
        // frame could be the beginning of a delimiter): at the end of the stream the policy applies to them too.
        var overLong = frame.count > maxFrameBytes
        if case .fixedLength = mode { overLong = false }  // its length is the mode's, not the maximum's
        if overLong && longFrames == .split {
            emitPieces(frame, start: start, emit)
        } else if overLong {
            discardedBytes += frame.count - maxFrameBytes
            emit(Frame(bytes: frame.prefix(maxFrameBytes), start: start, truncated: true))
        } else if !(continuing && frame.isEmpty) {
            // (An empty rest after the pieces of a split frame is no piece.)
            emit(Frame(bytes: frame, start: start, truncated: continuing))
        }
        pending = []
        continuing = false
    }

    /// Emits `bytes` (which begin at `start`) as pieces of at most `maxFrameBytes`, all flagged truncated.
    private func emitPieces(_ bytes: ArraySlice<UInt8>, start: Int, _ emit: (Frame) -> Void) {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let end = min(index + maxFrameBytes, bytes.endIndex)
            emit(Frame(bytes: bytes[index..<end], start: start + (index - bytes.startIndex), truncated: true))
            index = end
        }
    }

    private mutating func delimited(
        _ buffer: [UInt8], delimiter: UInt8, stripCarriageReturn: Bool, _ emit: (Frame) -> Void
    ) {
        var start = 0
        let count = buffer.count
        buffer.withUnsafeBufferPointer { bytes in
            var index = 0
            while index < count {
                // memchr is vectorised; a byte loop here costs several times more per line.
                guard let found = memchrIndex(bytes, delimiter, from: index) else { break }
                emitFrame(buffer, start: start, end: found, stripCarriageReturn: stripCarriageReturn, emit)
                index = found + 1
                start = index
            }
        }
        keepRemainder(buffer, from: start, stripCarriageReturn: stripCarriageReturn, emit)
    }

    private mutating func multiByteDelimited(_ buffer: [UInt8], delimiter: [UInt8], _ emit: (Frame) -> Void) {
        // Join with what is pending so a delimiter split across reads is still found.
        var joined = pending
        let pendingCount = pending.count
        pending = []
        joined.append(contentsOf: buffer)
        var start = 0
        var index = 0
        while index + delimiter.count <= joined.count {
            if joined[index] == delimiter[0] && joined[index..<(index + delimiter.count)].elementsEqual(delimiter) {
                var frame = joined[start..<index]
                if discarding {
                    // The tail of an over-long frame: drop it and resume with the next frame.
                    discardedBytes += frame.count
                    discarding = false
                    index += delimiter.count
                    start = index
                    continue
                }
                var truncated = continuing
                continuing = false
                if truncated && frame.isEmpty {
                    index += delimiter.count
                    start = index
                    continue
                }
                if frame.count > maxFrameBytes && longFrames == .split {
                    emitPieces(frame, start: start - pendingCount, emit)
                    index += delimiter.count
                    start = index
                    continue
                }
                if frame.count > maxFrameBytes {
                    discardedBytes += frame.count - maxFrameBytes
                    frame = frame.prefix(maxFrameBytes)
                    truncated = true
                }
                emit(Frame(bytes: frame, start: start - pendingCount, truncated: truncated))
                index += delimiter.count
                start = index
            } else {
                index += 1
            }
        }
        if start < joined.count {
            pending = Array(joined[start...])
            // While discarding, and after cutting a frame, the last bytes are kept: they may begin the delimiter
            // that ends the frame.
            let keep = min(pending.count, delimiter.count - 1)
            if discarding {
                discardedBytes += pending.count - keep
                pending.removeFirst(pending.count - keep)
            } else if longFrames == .split && pending.count > maxFrameBytes + delimiter.count {
                // Keep the last bytes: they may be the beginning of a delimiter.
                let cut = (pending.count - delimiter.count) / maxFrameBytes * maxFrameBytes
                emitPieces(pending[0..<cut], start: start - pendingCount, emit)
                pending.removeFirst(cut)
                continuing = true
            } else if pending.count > maxFrameBytes + delimiter.count {
                discardedBytes += pending.count - maxFrameBytes - keep
                emit(Frame(bytes: pending.prefix(maxFrameBytes), start: start - pendingCount, truncated: true))
                pending.removeFirst(pending.count - keep)
                discarding = true
            }
        }
    }

    @inline(__always)
    private func memchrIndex(_ bytes: UnsafeBufferPointer<UInt8>, _ byte: UInt8, from index: Int) -> Int? {
        guard let base = bytes.baseAddress, index < bytes.count else { return nil }
        guard let found = memchr(base + index, Int32(byte), bytes.count - index) else { return nil }
        return UnsafeRawPointer(found) - UnsafeRawPointer(base)
    }

    private mutating func emitFrame(
        _ buffer: [UInt8], start: Int, end: Int, stripCarriageReturn: Bool, _ emit: (Frame) -> Void
    ) {
        if discarding {
            // The tail of an over-long frame: drop it and resume with the next frame. A held `\r` precedes this
            // read's bytes; the tail's last `\r` is part of the line end.
            let endsWithCarriageReturn = end > start ? buffer[end - 1] == 0x0D : heldCarriageReturn
            let lineEnd = stripCarriageReturn && endsWithCarriageReturn ? 1 : 0
            discardedBytes += end - start + (heldCarriageReturn ? 1 : 0) - lineEnd + pending.count
            pending = []
            discarding = false
            heldCarriageReturn = false
            return
        }
        if pending.isEmpty && !continuing {
            var frameEnd = end
            if stripCarriageReturn, frameEnd > start, buffer[frameEnd - 1] == 0x0D { frameEnd -= 1 }
            if frameEnd - start > maxFrameBytes && longFrames == .split {
                emitPieces(buffer[start..<frameEnd], start: start, emit)
            } else if frameEnd - start > maxFrameBytes {
                discardedBytes += frameEnd - start - maxFrameBytes
                emit(Frame(bytes: buffer[start..<(start + maxFrameBytes)], start: start, truncated: true))
            } else {
                emit(Frame(bytes: buffer[start..<frameEnd], start: start, truncated: false))
            }
            return
        }
        // The frame began in an earlier buffer: join it (rare: one copy per read at most).
        var joined = pending
        let carried = pending.count
        pending = []
        joined.append(contentsOf: buffer[start..<end])
        if stripCarriageReturn, joined.last == 0x0D { joined.removeLast() }
        var truncated = continuing
        continuing = false
        // The delimiter right after the last piece of a split frame ends it: no empty piece.
        if truncated && joined.isEmpty { return }
        if joined.count > maxFrameBytes && longFrames == .split {
            emitPieces(joined[...], start: start - carried, emit)
            return
        }
        if joined.count > maxFrameBytes {
            discardedBytes += joined.count - maxFrameBytes
            joined.removeLast(joined.count - maxFrameBytes)
            truncated = true
        }
        emit(Frame(bytes: joined[...], start: start - carried, truncated: truncated))
    }

    private mutating func keepRemainder(
        _ buffer: [UInt8], from start: Int, stripCarriageReturn: Bool, _ emit: (Frame) -> Void
    ) {
        guard start < buffer.count else { return }
        // A `\r` ending the read may be the first half of a `\r\n` split by the read boundary: it counts neither
        // against the maximum nor as discarded until the next byte shows whether it ends the line.
        let heldBack = stripCarriageReturn && buffer[buffer.count - 1] == 0x0D ? 1 : 0
        if discarding {
            // No delimiter in this read, so a `\r` held from the previous one was not a line end.
            discardedBytes += buffer.count - start - heldBack + (heldCarriageReturn ? 1 : 0)
            heldCarriageReturn = heldBack == 1
            return
        }
        pending.append(contentsOf: buffer[start...])
        if pending.count - heldBack > maxFrameBytes && longFrames == .split {
            // Emit whole pieces now and keep the remainder: memory stays bounded and nothing is lost.
            let pendingStart = start - (pending.count - (buffer.count - start))
            let cut = pending.count / maxFrameBytes * maxFrameBytes
            let keep = pending.count - cut
            if keep == 0 {
                // Keep one piece back: the delimiter may follow right away, and the frame ends with it.
                emitPieces(pending[0..<(cut - maxFrameBytes)], start: pendingStart, emit)
                pending.removeFirst(cut - maxFrameBytes)
            } else {
                emitPieces(pending[0..<cut], start: pendingStart, emit)
                pending.removeFirst(cut)
            }
            continuing = true
        } else if pending.count - heldBack > maxFrameBytes {
            // Cut now rather than buffer an unbounded line; the rest is discarded up to the next delimiter.
            discardedBytes += pending.count - heldBack - maxFrameBytes
            emit(Frame(bytes: pending.prefix(maxFrameBytes), start: start - (pending.count - (buffer.count - start)), truncated: true))
            pending = []
            discarding = true
            heldCarriageReturn = heldBack == 1
        }
    }

    private mutating func fixedFrames(_ buffer: [UInt8], length: Int, _ emit: (Frame) -> Void) {
        var index = 0
        if !pending.isEmpty {
            let needed = length - pending.count
            let take = min(needed, buffer.count)
            pending.append(contentsOf: buffer[0..<take])
            index = take
            if pending.count == length {
                emit(Frame(bytes: pending[...], start: -(length - take), truncated: false))
                pending = []
            }
        }
        while index + length <= buffer.count {
            emit(Frame(bytes: buffer[index..<(index + length)], start: index, truncated: false))
            index += length
        }
        if index < buffer.count { pending.append(contentsOf: buffer[index...]) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
