import UplinkCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import UplinkFileSystem

/// One file being read: its descriptor, identity, read position, framing state and rotation state.
final class TailedFile {
    /// The checkpoint record this file advances.
    let id: Int
    /// Where the file is now (it changes when a rotated copy takes over); events keep the path they started with.
    var path: String
    var fd: Int32
    var identity: FileIdentity
    var framer: EventFramer
    var multiline: MultilineAggregator?
    /// No longer matched by the include patterns (rotated away, deleted, or a copy being finished).
    var draining = false
    /// When data last arrived (or the file was opened).
    var lastData: ContinuousClock.Instant
    /// The last read returned end of file.
    var atEnd = false
    /// Hard links left: 0 means deleted (still readable through the descriptor).
    var links = 1
    var watch: Int32?
    /// The file size at the last check: the fingerprint is checked again only when it changes.
    var lastSize: Int64 = -1
    /// The offset up to which a chunk's acknowledgement (or a skip) has been registered.
    var registeredThrough: Int64
    /// Byte ranges ahead whose events an earlier run delivered (from the checkpoint): reads stop at the next
    /// one's start, and the reader jumps over it. Sorted, disjoint, after the read offset.
    var skips: [Range<Int64>] = []

    init(id: Int, path: String, fd: Int32, identity: FileIdentity, framer: EventFramer, multiline: MultilineAggregator?)
    {
        self.id = id
        self.path = path
        self.fd = fd
        self.identity = identity
        self.framer = framer
        self.multiline = multiline
        self.lastData = .now
        self.registeredThrough = framer.offset
    }

    /// Where the next byte is read.
    var readOffset: Int64 { framer.offset }

    /// Every byte before this offset is in an event already handed downstream: the checkpoint may go up to here.
    var completeOffset: Int64 {
        let framed = framer.completeOffset
        if let start = multiline?.pendingStart { return min(framed, start) }
        return framed
    }

    /// Something is held back waiting for more data (a partial line or a multi-line event).
    var hasPending: Bool { framer.hasPendingBytes || !(multiline?.isEmpty ?? true) }

    /// How much the next read may take: `size`, or less so as to stop where the next skipped range begins.
    func readSize(_ size: Int) -> Int {
        guard let next = skips.first else { return size }
        return Int(max(0, min(Int64(size), next.lowerBound - readOffset)))
    }

    /// Reads one buffer; nil at end of file. Throws on read errors.
    func read(size: Int) throws -> [UInt8]? {
        // Read straight into the array's storage: no zero-filling of 64 KiB per read.
        var failed = false
        let buffer = [UInt8](unsafeUninitializedCapacity: size) { storage, initialized in
            while true {
                let count = Glibc.read(fd, storage.baseAddress, size)
                if count < 0 && errno == EINTR { continue }
                failed = count < 0
                initialized = max(0, count)
                return
            }
        }
        if failed { throw FileIO.Failure("cannot read", path: path) }
        return buffer.isEmpty ? nil : buffer
    }

    func seek(to offset: Int64) {
        _ = lseek(fd, off_t(offset), SEEK_SET)
        framer.offset = offset
        registeredThrough = offset
    }

    func closeDescriptor() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }
}

/// The tail's decisions, as pure functions tested without files.
enum TailPolicy {
    /// Where a file seen for the first time starts: at its end only for `read_from: end` at the very first start
    /// of the source; files that appear later were created after (or while) we last looked, so all their lines
    /// are new.
    static func startOffset(size: Int64, readFrom: FileTailSource.ReadFrom, initialScan: Bool, firstStart: Bool)
        -> Int64
    {
        readFrom == .end && initialScan && firstStart ? size : 0
    }

    /// An open file was truncated (copytruncate, or `> file`) when it is shorter than what was read, or no longer
    /// begins with the same bytes (truncated and written again past our offset).
    static func isTruncated(readOffset: Int64, size: Int64, fingerprintMatches: Bool) -> Bool {
        size < readOffset || !fingerprintMatches
    }

    /// A file is closed at its end once deleted, or once rotated away and quiet for `rotateWait`.
    static func shouldRelease(
        atEnd: Bool, links: Int, draining: Bool, quietFor: Duration, rotateWait: Duration
    ) -> Bool {
        guard atEnd else { return false }
        return links == 0 || (draining && quietFor >= rotateWait)
    }

    /// What to do with a checkpoint left from an earlier run whose file is no longer at a matched path.
    enum OrphanAction: Equatable {
        /// Read the rest of it (it was rotated while we were stopped): from the checkpoint to its end.
        case drain
        /// Nothing left to read: remember it, so it is not read again if it is matched later.
        case keep
        /// It is where it was, was not being finished, and is not matched any more (the configuration changed):
        /// leave it alone.
        case leave
    }

    static func orphanAction(
        foundAt location: String, recordedPath: String, rotated: Bool, size: Int64, offset: Int64
    ) -> OrphanAction {
        if location == recordedPath && !rotated { return .leave }
        return size > offset ? .drain : .keep
    }
}
