#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import UplinkFileSystem

/// A counter that never hands out the same value twice, across restarts and crashes, without an fsync per
/// value (thing-model `RequestID`s must be unique and increasing for the device's whole life).
///
/// Values come from blocks reserved ahead (write-ahead): before the first value of a block is handed out, the
/// block's end is written to `path` atomically (``FileIO/writeFileAtomically(_:_:mode:)``, mode 0600). After a
/// restart the counter resumes at the persisted end, so a crash skips at most one block and never reuses a value.
/// The file holds the next value to hand out after a restart, in decimal.
///
/// Each reservation doubles the block, up to `maxBlockSize`: a slow producer skips few values after a crash,
/// and a fast one (150k values/s) writes and fsyncs the file a few times a second instead of 150 times.
///
/// A failed reservation (the write, fsync, rename or directory fsync failed) throws and hands out nothing: the
/// values of a block are used only once its end is durable.
///
/// Used from one task at a time (it is a value type with file I/O in ``next()``).
public struct PersistentCounter {
    public let path: String
    private let fileSystem: any FileSystem
    /// The next block's size.
    public private(set) var blockSize: UInt64
    public let maxBlockSize: UInt64
    private var nextValue: UInt64
    private var reservedEnd: UInt64

    /// Reads the persisted position; a missing file starts at `start`.
    ///
    /// Throws when the file exists but cannot be read or does not hold a number: guessing could reuse values.
    public init(
        path: String, blockSize: UInt64 = 1000, maxBlockSize: UInt64 = 64_000, start: UInt64 = 1,
        fileSystem: any FileSystem = PosixFileSystem()
    ) throws(FileIO.Failure) {
        self.path = path
        self.fileSystem = fileSystem
        self.blockSize = max(1, blockSize)
        self.maxBlockSize = max(self.blockSize, maxBlockSize)
        var stored: [UInt8]?
        do {
            stored = try AtomicFile.read(path, limit: 64, fileSystem: fileSystem)
        } catch where error.code == ENOENT {
            stored = nil
        }
        if var bytes = stored {
            while let last = bytes.last, last == 0x0A || last == 0x20 { bytes.removeLast() }
            guard let stored = UInt64(String(decoding: bytes, as: UTF8.self)) else {
                throw FileIO.Failure("the counter file does not hold a number (remove it only if values may repeat):", path: path, code: EINVAL)
            }
            nextValue = stored
        } else {
            nextValue = start
        }
        reservedEnd = nextValue
    }

    /// The value the next call to ``next()`` returns.
    public var peek: UInt64 { nextValue }

    /// Hands out the next value, reserving (and persisting) a new block first when the current one is used up.
    public mutating func next() throws(FileIO.Failure) -> UInt64 {
        if nextValue >= reservedEnd {
            let end = nextValue &+ blockSize
            try FileIO.writeFileAtomically(path, Array("\(end)\n".utf8), mode: 0o600, fileSystem: fileSystem)
            reservedEnd = end
            blockSize = min(blockSize &* 2, maxBlockSize)
        }
        defer { nextValue += 1 }
        return nextValue
    }
}
