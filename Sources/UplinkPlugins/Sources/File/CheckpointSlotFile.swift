import UplinkCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The checkpoint file on disk (layout: ``CheckpointSlots``), written in place with checked POSIX calls.
///
/// Between two syncs every write goes into the same slot, the one not holding the last synced checkpoint: that
/// one is never touched until the slot being written is on disk, so a power cut, a torn write or a failed fsync
/// (after which Linux may drop the dirty page) always leaves one valid, older checkpoint. A successful ``sync()``
/// makes the written slot the durable one and moves writing to the other slot.
///
/// Creating the file, and growing it when the checkpoint outgrows a slot (many files), writes a whole new file
/// atomically (temporary file, fsync, rename); that is rare. Not thread-safe: its owner serialises calls.
final class CheckpointSlotFile {
    let path: String
    private var descriptor: Int32 = -1
    private var capacity = 0
    private var sequence: UInt64 = 0
    /// The slot written since the last sync; the other one holds the last synced checkpoint.
    private var writeSlot = 1
    /// A write since the last successful sync.
    private(set) var needsSync = false

    init(path: String) {
        self.path = path
    }

    deinit { closeFile() }

    /// Opens an existing file and makes its newest checkpoint durable (a previous process may have been killed
    /// before syncing it). Returns nil when there is no file.
    func load() throws(FileIO.Failure) -> CheckpointSlots.Recovery? {
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw FileIO.Failure("cannot open", path: path)
        }
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readFile(path, limit: 2 * CheckpointSlots.maximumCapacity)
        } catch {
            close(fd)
            throw error
        }
        guard fsync(fd) == 0 else {
            let code = errno
            close(fd)
            throw FileIO.Failure("cannot fsync", path: path, code: code)
        }
        let recovery = CheckpointSlots.decode(bytes)
        descriptor = fd
        capacity = recovery.capacity
        if let newest = recovery.newest {
            sequence = newest.sequence
            writeSlot = 1 - newest.index
        } else {
            // Nothing valid: the next write replaces the whole file.
            capacity = 0
        }
        return recovery
    }

    /// Writes `entries` into the slot being written (in place, not synced), or a whole new file when there is
    /// none yet or they do not fit a slot (synced).
    func write(_ entries: [CheckpointEntry]) throws(FileIO.Failure) {
        sequence += 1
        if descriptor >= 0, capacity > 0,
            let slot = CheckpointSlots.encodeSlot(entries, sequence: sequence, capacity: capacity)
        {
            let offset = off_t(writeSlot * capacity)
            var written = 0
            while written < slot.count {
                let count = slot.withUnsafeBytes { raw in
                    pwrite(descriptor, raw.baseAddress! + written, raw.count - written, offset + off_t(written))
                }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw FileIO.Failure("cannot write", path: path)
                }
                written += count
            }
            needsSync = true
            return
        }
        try replace(entries)
    }

    /// Makes the last write durable; on failure it is not, and the next write goes into the same slot again.
    func sync() throws(FileIO.Failure) {
        guard needsSync, descriptor >= 0 else { return }
        guard fdatasync(descriptor) == 0 else { throw FileIO.Failure("cannot fsync", path: path) }
        needsSync = false
        writeSlot = 1 - writeSlot
    }

    func closeFile() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    private func replace(_ entries: [CheckpointEntry]) throws(FileIO.Failure) {
        let newCapacity = max(capacity, CheckpointSlots.capacity(for: entries))
        guard let bytes = CheckpointSlots.encodeFile(entries, sequence: sequence, capacity: newCapacity) else {
            throw FileIO.Failure("checkpoint too large for", path: path, code: EFBIG)
        }
        closeFile()
        try FileIO.writeFileAtomically(path, bytes, mode: 0o600)
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw FileIO.Failure("cannot open", path: path) }
        descriptor = fd
        capacity = newCapacity
        writeSlot = 1
        needsSync = false
    }
}
