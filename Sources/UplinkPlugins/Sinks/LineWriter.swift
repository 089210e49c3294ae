#if canImport(Glibc)
import Glibc
#endif
import UplinkFileSystem
import UplinkCore

/// Writes events as lines to a descriptor through one reused buffer: one `write` per chunk, not per event.
struct LineWriter {
    let fd: Int32
    let path: String
    private var buffer: [UInt8] = []

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(1 << 16)
    }

    /// Writes a chunk; on success its acknowledgements are resolved as delivered.
    mutating func write<E: Event>(_ chunk: EventChunk<E>) throws {
        buffer.removeAll(keepingCapacity: true)
        for event in chunk.events {
            event.appendText(to: &buffer)
            buffer.append(0x0A)
            if buffer.count >= 1 << 16 { try flush() }
        }
        try flush()
        chunk.acknowledgements.resolve(.delivered)
    }

    private mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        if let failure = buffer.withUnsafeBytes({ FileIO.writeAll(fd, $0) }) {
            throw FileIO.Failure("cannot write to", path: path, code: failure)
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
