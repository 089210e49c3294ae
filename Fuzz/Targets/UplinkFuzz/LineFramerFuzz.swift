@testable import UplinkCore
@testable import UplinkPlugins

/// The line framer (every stream source) and the multiline aggregator behind it.
///
/// Input: the framing (newline, a one-byte or a multi-byte delimiter, fixed length), the maximum frame length
/// (small, so long frames are common), the long-frame policy and the read sizes; then the stream.
///
/// Properties: framing does not depend on how the stream was cut into reads (the frames equal those of a
/// reference that sees the whole stream at once); every frame fits the maximum; with `split` nothing is lost,
/// with `truncate` every byte cut is counted; a frame's `start` points at its bytes when they are in the read;
/// multiline events hold exactly their lines joined by `\n`, within their line and byte limits.
enum LineFramerFuzz {
    struct Framed: Equatable {
        var bytes: [UInt8]
        var truncated: Bool
    }

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var input = FuzzInput(data)
        let modes: [LineFramer.Mode] = [
            .newline, .delimiter([0]), .delimiter([UInt8(ascii: ";")]), .delimiter(Array("\r\n".utf8)),
            .delimiter(Array("END".utf8)), .delimiter(Array("aa".utf8)), .fixedLength(input.int(in: 1...16)),
        ]
        let mode = input.pick(modes)
        let maxFrameBytes = input.int(in: 1...48)
        let policy = input.pick(LineFramer.LongFramePolicy.allCases)
        let readSizes = (0..<4).map { _ in input.int(in: 1...64) }
        let maxLines = input.int(in: 1...6)
        let stream = Array(input.rest)

        var framer = LineFramer(mode: mode, maxFrameBytes: maxFrameBytes, longFrames: policy)
        var frames: [Framed] = []
        var offset = 0
        var read = 0
        while offset < stream.count {
            let end = min(stream.count, offset + readSizes[read % readSizes.count])
            let buffer = Array(stream[offset..<end])
            framer.frames(in: buffer) { frame in
                require(frame.bytes.count <= maxFrameBytes || isFixed(mode), "a frame over the maximum")
                if frame.start >= 0 && frame.start + frame.bytes.count <= buffer.count {
                    require(
                        buffer[frame.start..<(frame.start + frame.bytes.count)].elementsEqual(frame.bytes),
                        "a frame's start does not point at its bytes")
                }
                frames.append(Framed(bytes: Array(frame.bytes), truncated: frame.truncated))
            }
            require(framer.pendingByteCount <= maxFrameBytes * 2 + 64 || isFixed(mode), "pending bytes grow")
            offset = end
            read += 1
        }
        framer.flush { frames.append(Framed(bytes: Array($0.bytes), truncated: $0.truncated)) }

        let (expected, discarded) = reference(stream, mode: mode, max: maxFrameBytes, policy: policy)
        require(
            frames == expected,
            "reads of \(readSizes) framed differently from the whole stream: \(frames.count) frames, expected \(expected.count)"
        )
        if !isFixed(mode) {
            require(framer.discardedBytes == discarded, "discarded \(framer.discardedBytes) bytes, expected \(discarded)")
        }

        // At least a fixed frame (16 bytes): a single line is never cut by the aggregator, only by the framer.
        multiline(frames, maxLines: maxLines, maxBytes: maxFrameBytes * 2 + 16)
    }

    static func isFixed(_ mode: LineFramer.Mode) -> Bool {
        if case .fixedLength = mode { return true }
        return false
    }

    /// The frames of the whole stream, by the documented rules: cut at each delimiter (newline also drops a
    /// `\r` before it); a frame over the maximum is cut to it (`truncate`, the rest counted) or cut into pieces
    /// (`split`), flagged either way; what follows the last delimiter is the last frame.
    static func reference(
        _ stream: [UInt8], mode: LineFramer.Mode, max: Int, policy: LineFramer.LongFramePolicy
    ) -> ([Framed], Int) {
        var frames: [Framed] = []
        var discarded = 0
        let delimiter: [UInt8]
        switch mode {
        case .fixedLength(let length):
            var index = 0
            while index < stream.count {
                frames.append(Framed(bytes: Array(stream[index..<min(stream.count, index + length)]), truncated: false))
                index += length
            }
            return (frames, 0)
        case .newline: delimiter = [0x0A]
        case .delimiter(let bytes): delimiter = bytes
        }
        var pieces: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index + delimiter.count <= stream.count {
            if stream[index..<(index + delimiter.count)].elementsEqual(delimiter) {
                pieces.append(stream[start..<index])
                index += delimiter.count
                start = index
            } else {
                index += 1
            }
        }
        if start < stream.count { pieces.append(stream[start...]) }
        for var piece in pieces {
            if mode == .newline, piece.last == 0x0D { piece = piece.dropLast() }
            if piece.count <= max {
                frames.append(Framed(bytes: Array(piece), truncated: false))
            } else if policy == .split {
                var cut = piece.startIndex
                while cut < piece.endIndex {
                    let end = Swift.min(cut + max, piece.endIndex)
                    frames.append(Framed(bytes: Array(piece[cut..<end]), truncated: true))
                    cut = end
                }
            } else {
                frames.append(Framed(bytes: Array(piece.prefix(max)), truncated: true))
                discarded += piece.count - max
            }
        }
        return (frames, discarded)
    }

    /// Lines that start with a space or a tab continue the event before them (a stack trace's shape).
    static func multiline(_ frames: [Framed], maxLines: Int, maxBytes: Int) {
        var aggregator = MultilineAggregator(maxLines: maxLines, maxBytes: maxBytes)
        let origin = EventOrigin(sourceID: "fuzz")
        var events: [RawEvent] = []
        var groups: [[Framed]] = []
        for frame in frames {
            let isStart = frame.bytes.first != 0x20 && frame.bytes.first != 0x09
            aggregator.add(
                RawEvent(bytes: frame.bytes[...], origin: origin, timestamp: 0, truncated: frame.truncated),
                isStart: isStart, into: &events)
            if groups.isEmpty || isStart || groups[groups.count - 1].count >= maxLines { groups.append([]) }
            groups[groups.count - 1].append(frame)
        }
        aggregator.flush(into: &events)
        require(events.count == groups.count, "\(groups.count) multiline groups became \(events.count) events")
        for (event, group) in zip(events, groups) {
            require(group.count <= maxLines, "a multiline event over max_lines")
            var joined: [UInt8] = []
            for (index, line) in group.enumerated() {
                if index > 0 { joined.append(0x0A) }
                joined.append(contentsOf: line.bytes)
            }
            let cut = joined.count > maxBytes
            require(event.bytes.count <= maxBytes, "a multiline event over its byte limit")
            require(event.bytes.elementsEqual(joined.prefix(maxBytes)), "a multiline event lost or changed bytes")
            require(
                event.truncated == (cut || group.contains(where: \.truncated)),
                "a multiline event's truncated flag is wrong")
        }
    }
}
