import UplinkCore
import UplinkFileSystem

/// The checkpoint file on disk: a ``TwoSlotFile`` in the tail's layout (``CheckpointSlots``), its failures as
/// ``FileIO/Failure`` (with the errno the tail logs). Not thread-safe: its owner serialises calls.
final class CheckpointSlotFile {
    private let file: TwoSlotFile<CheckpointSlots>

    var path: String { file.path }
    /// A write since the last successful sync.
    var needsSync: Bool { file.needsSync }

    init(path: String) {
        file = TwoSlotFile(path: path)
    }

    /// Opens an existing file and makes its newest checkpoint durable; nil when there is no file.
    func load() throws(FileIO.Failure) -> CheckpointSlots.Recovery? {
        try file.load()
    }

    /// Writes `entries` in place (not synced), or a whole new file when needed (synced).
    func write(_ entries: [CheckpointEntry]) throws(FileIO.Failure) {
        try file.write(entries)
    }

    /// Makes the last write durable; on failure it is not, and the next write goes into the same slot again.
    func sync() throws(FileIO.Failure) {
        try file.sync()
    }

    func closeFile() { file.closeFile() }
}

extension CheckpointSlots: TwoSlotLayout {
    static func newest(in recovery: Recovery) -> (index: Int, sequence: UInt64)? {
        recovery.newest.map { ($0.index, $0.sequence) }
    }

    static func capacity(of recovery: Recovery) -> Int { recovery.capacity }
}
