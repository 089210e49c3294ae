import UplinkCore

/// Reads newline-terminated lines from a non-blocking descriptor (a plugin's stdout) without blocking a
/// thread. A line longer than `maxLineBytes` is a protocol error rather than unbounded memory.
struct LineReader {
    let fd: Int32
    let maxLineBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    private var atEnd = false

    init(fd: Int32, maxLineBytes: Int = 16 << 20) {
        self.fd = fd
        self.maxLineBytes = maxLineBytes
    }

    struct LineTooLong: Error, CustomStringConvertible {
        var limit: Int
        var description: String { "a line longer than \(limit) bytes" }
    }

    /// The next line without its newline (a trailing `\r` is dropped too); nil at end of file. An unterminated
    /// last line is returned as a line. Empty lines are skipped.
    mutating func next() async throws -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: 0x0A) {
                var end = newline
                if end > start && buffer[end - 1] == 0x0D { end -= 1 }
                let line = buffer[start..<end]
                start = newline + 1
                scanned = start
                if line.isEmpty { continue }
                return line
            }
            scanned = buffer.count
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                scanned = start
                return line
            }
            if buffer.count - start > maxLineBytes { throw LineTooLong(limit: maxLineBytes) }
            // Compact before reading more, so the buffer holds at most one partial line plus one read.
            if start > 0 {
                buffer.removeFirst(start)
                scanned -= start
                start = 0
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = try await AsyncFileDescriptor.read(fd, into: &chunk)
            if count == 0 {
                atEnd = true
            } else {
                buffer.append(contentsOf: chunk[0..<count])
            }
        }
    }
}
