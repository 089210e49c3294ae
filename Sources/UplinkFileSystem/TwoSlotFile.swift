#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a ``TwoSlotFile`` holds and how: the bytes of one slot, of a whole new file, and what a file's bytes
/// decode to. A layout is a pure function of the bytes (fuzzed and unit tested by its owner); ``SlotFraming``
/// is the framing both layouts use.
public protocol TwoSlotLayout {
    associatedtype Content
    associatedtype Recovery
    /// A file larger than two slots of this is refused as damaged rather than read.
    static var maximumCapacity: Int { get }
    /// The slot capacity (a power of two, at least one page) that holds `content`.
    static func capacity(for content: Content) -> Int
    /// The bytes of one slot (without padding); nil when `content` does not fit `capacity`.
    static func encodeSlot(_ content: Content, sequence: UInt64, capacity: Int) -> [UInt8]?
    /// A whole new file: `content` in slot 0, slot 1 never written.
    static func encodeFile(_ content: Content, sequence: UInt64, capacity: Int) -> [UInt8]?
    /// What a file's bytes hold; never traps, whatever the bytes.
    static func decode(_ file: [UInt8]) -> Recovery
    /// The valid slot with the highest sequence in `recovery` (its index and sequence), nil when neither is valid.
    static func newest(in recovery: Recovery) -> (index: Int, sequence: UInt64)?
    /// Each slot's capacity in `recovery`: half the file.
    static func capacity(of recovery: Recovery) -> Int
}

/// A small state file rewritten in place (the tail's checkpoints, the disk buffer's ledger): two checksummed
/// slots written in turn, so an update is one `pwrite` of a page and never a temporary file and a rename (which
/// wear out SD cards and eMMC). All calls go through the ``FileSystem`` seam.
///
/// Between two syncs every write goes into the same slot, the one not holding the last synced content: that one
/// is never touched until the slot being written is on disk, so a power cut, a torn write or a failed fsync
/// (after which Linux may drop the dirty page) always leaves one valid, older content. A successful ``sync()``
/// makes the written slot the durable one and moves writing to the other slot.
///
/// Creating the file, and growing it when the content outgrows a slot, writes a whole new file with
/// ``AtomicFile`` (temporary file, fsync, rename, directory fsync); that is rare. Not thread-safe: its owner
/// serialises calls.
public final class TwoSlotFile<Layout: TwoSlotLayout> {
    public let path: String
    private let fileSystem: any FileSystem
    private var descriptor: Int32 = -1
    private var capacity = 0
    private var sequence: UInt64 = 0
    /// The slot written since the last sync; the other one holds the last synced content.
    private var writeSlot = 1
    /// A write since the last successful sync.
    public private(set) var needsSync = false

    public init(path: String, fileSystem: any FileSystem = PosixFileSystem()) {
        self.path = path
        self.fileSystem = fileSystem
    }

    deinit { closeFile() }

    /// Opens an existing file and makes its newest content durable (a previous process may have been killed
    /// before syncing it). Returns nil when there is no file.
    public func load() throws(FileSystemFailure) -> Layout.Recovery? {
        let fd = fileSystem.open(path, flags: O_RDWR | O_CLOEXEC | O_NOFOLLOW, mode: 0)
        guard fd >= 0 else {
            if fd == -ENOENT { return nil }
            throw FileSystemFailure("cannot open", path: path, code: -fd)
        }
        let bytes: [UInt8]
        do {
            bytes = try fileSystem.readFile(path, limit: 2 * Layout.maximumCapacity, flags: O_NOFOLLOW)
        } catch {
            fileSystem.close(fd)
            throw error
        }
        let code = fileSystem.fsync(fd)
        guard code == 0 else {
            fileSystem.close(fd)
            throw FileSystemFailure("cannot fsync", path: path, code: code)
        }
        let recovery = Layout.decode(bytes)
        closeFile()
        descriptor = fd
        capacity = Layout.capacity(of: recovery)
        if let newest = Layout.newest(in: recovery) {
            sequence = newest.sequence
            writeSlot = 1 - newest.index
        } else {
            // Nothing valid: the next write replaces the whole file.
            capacity = 0
        }
        return recovery
    }

    /// Writes `content` into the slot being written (in place, not synced), or a whole new file when there is
    /// none yet or it does not fit a slot (synced).
    public func write(_ content: Layout.Content) throws(FileSystemFailure) {
        sequence += 1
        if descriptor >= 0, capacity > 0, let slot = Layout.encodeSlot(content, sequence: sequence, capacity: capacity) {
            let code = slot.withUnsafeBytes { fileSystem.pwriteAll(descriptor, $0, at: writeSlot * capacity) }
            guard code == 0 else { throw FileSystemFailure("cannot write", path: path, code: code) }
            needsSync = true
            return
        }
        try replace(content)
    }

    /// Makes the last write durable; on failure it is not, and the next write goes into the same slot again.
    public func sync() throws(FileSystemFailure) {
        guard needsSync, descriptor >= 0 else { return }
        let code = fileSystem.fdatasync(descriptor)
        guard code == 0 else { throw FileSystemFailure("cannot fsync", path: path, code: code) }
        needsSync = false
        writeSlot = 1 - writeSlot
    }

    public func closeFile() {
        if descriptor >= 0 { fileSystem.close(descriptor) }
        descriptor = -1
    }

    private func replace(_ content: Layout.Content) throws(FileSystemFailure) {
        let newCapacity = max(capacity, Layout.capacity(for: content))
        guard let bytes = Layout.encodeFile(content, sequence: sequence, capacity: newCapacity) else {
            throw FileSystemFailure("too large for", path: path, code: EFBIG)
        }
        closeFile()
        try AtomicFile.write(path, bytes, mode: 0o600, fileSystem: fileSystem)
        let fd = fileSystem.open(path, flags: O_RDWR | O_CLOEXEC | O_NOFOLLOW, mode: 0)
        guard fd >= 0 else { throw FileSystemFailure("cannot open", path: path, code: -fd) }
        descriptor = fd
        capacity = newCapacity
        writeSlot = 1
        needsSync = false
    }
}

/// The slot framing of two-slot files: `magic` (4 bytes), a format byte, three zero bytes, `capacity` (u32 LE),
/// `sequence` (u64 LE), the payload's `length` (u32 LE), a CRC-32 (u32 LE) of the 24 bytes before it and of the
/// payload, then the payload. A torn or corrupted slot (bad magic, format, capacity, length or CRC) is not valid;
/// a never-written one (all zeros) is empty.
public enum SlotFraming {
    public static let headerBytes = 28
    /// One page per slot: a rewrite touches one page.
    public static let minimumCapacity = 4096

    public struct Slot: Sendable, Equatable {
        public var index: Int
        public var sequence: UInt64
        public var format: UInt8
        public var payload: [UInt8]
    }

    /// The smallest capacity (a power of two, at least one page) for a payload of `count` bytes.
    public static func capacity(forPayload count: Int) -> Int {
        var capacity = minimumCapacity
        while capacity < headerBytes + count { capacity *= 2 }
        return capacity
    }

    public static func encodeSlot(
        magic: [UInt8], format: UInt8, payload: [UInt8], sequence: UInt64, capacity: Int, maximumCapacity: Int
    ) -> [UInt8]? {
        guard magic.count == 4, headerBytes + payload.count <= capacity, capacity <= maximumCapacity else { return nil }
        var bytes = magic
        bytes.reserveCapacity(headerBytes + payload.count)
        bytes += [format, 0, 0, 0]
        appendLittleEndian(UInt64(capacity), bytes: 4, to: &bytes)
        appendLittleEndian(sequence, bytes: 8, to: &bytes)
        appendLittleEndian(UInt64(payload.count), bytes: 4, to: &bytes)
        appendLittleEndian(UInt64(CRC32.update(CRC32.checksum(bytes), payload)), bytes: 4, to: &bytes)
        bytes += payload
        return bytes
    }

    public static func encodeFile(
        magic: [UInt8], format: UInt8, payload: [UInt8], sequence: UInt64, capacity: Int, maximumCapacity: Int
    ) -> [UInt8]? {
        guard var slot = encodeSlot(
            magic: magic, format: format, payload: payload, sequence: sequence, capacity: capacity,
            maximumCapacity: maximumCapacity)
        else { return nil }
        slot += [UInt8](repeating: 0, count: 2 * capacity - slot.count)
        return slot
    }

    /// The valid slots of a file (whose format `accepts`), the number of damaged ones, and the capacity.
    public static func decode(
        _ file: [UInt8], magic: [UInt8], maximumCapacity: Int, accepts: (_ format: UInt8, _ payload: ArraySlice<UInt8>) -> Bool
    ) -> (slots: [Slot], damaged: Int, capacity: Int) {
        let capacity = file.count / 2
        guard file.count % 2 == 0, capacity >= headerBytes, capacity <= maximumCapacity else {
            return ([], file.allSatisfy { $0 == 0 } ? 0 : 2, capacity)
        }
        var slots: [Slot] = []
        var damaged = 0
        for index in 0..<2 {
            let slot = file[(index * capacity)..<((index + 1) * capacity)]
            let start = slot.startIndex
            if slot.prefix(headerBytes).allSatisfy({ $0 == 0 }) { continue }
            let length = Int(readLittleEndian(slot, at: start + 20, bytes: 4))
            guard slot.prefix(4).elementsEqual(magic), readLittleEndian(slot, at: start + 8, bytes: 4) == UInt64(capacity),
                length <= capacity - headerBytes,
                case let payload = slot[(start + headerBytes)..<(start + headerBytes + length)],
                CRC32.update(CRC32.checksum(slot[start..<(start + 24)]), Array(payload))
                    == UInt32(readLittleEndian(slot, at: start + 24, bytes: 4)),
                accepts(slot[start + 4], payload)
            else {
                damaged += 1
                continue
            }
            slots.append(
                Slot(index: index, sequence: readLittleEndian(slot, at: start + 12, bytes: 8), format: slot[start + 4], payload: Array(payload)))
        }
        return (slots, damaged, capacity)
    }

    private static func appendLittleEndian(_ value: UInt64, bytes count: Int, to bytes: inout [UInt8]) {
        for index in 0..<count { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
    }

    private static func readLittleEndian(_ bytes: ArraySlice<UInt8>, at start: Int, bytes count: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<count { value |= UInt64(bytes[start + index]) << (8 * UInt64(index)) }
        return value
    }
}
