import CUplinkLinux
import UplinkCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import UplinkFileSystem

/// How the file source learns that files changed.
enum WatchMode: String, Sendable, CaseIterable {
    /// inotify when the kernel allows it (instances and watches are limited), polling otherwise.
    case auto
    case inotify
    /// stat the files every `poll_interval` (network file systems, where inotify sees nothing).
    case poll
}

/// What woke the file source.
struct WatchWake: Sendable, Equatable {
    /// A watched directory changed (files created, moved or deleted), or events were lost: scan the globs.
    var rescan: Bool
    /// A watched file changed.
    var fileChanged: Bool

    static let timeout = WatchWake(rescan: false, fileChanged: false)
}

/// inotify and polling behind one interface (as Fluent Bit's in_tail has inotify and stat watchers): the file
/// source waits on ``wait(timeout:)``, which returns early when a watched file or directory changes.
///
/// Events are only wake-ups: the source checks every file it tails on each wake, so a lost or coalesced event
/// cannot lose data, and a safety timeout covers what inotify cannot see.
final class FileWatcher {
    private(set) var inotifyFD: Int32 = -1
    /// Watch descriptors by path for directories, and reference counts for file watches (two paths can be the
    /// same inode, which inotify gives one descriptor).
    private var directoryWatches: [String: Int32] = [:]
    private var directoryDescriptors: Set<Int32> = []
    private var fileWatchCounts: [Int32: Int] = [:]
    /// Files or directories that could not be watched (limits reached): the caller then polls.
    private(set) var incomplete = false

    static let fileMask = UInt32(IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)
    static let directoryMask = UInt32(
        IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)

    /// Starts inotify unless `mode` is `poll`; with `inotify` a failure is an error, with `auto` it falls back.
    init(mode: WatchMode) throws {
        guard mode != .poll else { return }
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0 {
            if mode == .inotify { throw FileIO.Failure("cannot start inotify", path: "") }
            incomplete = true
            return
        }
        inotifyFD = fd
    }

    var usesInotify: Bool { inotifyFD >= 0 }

    /// Watches a file for writes, truncation and renames; returns the descriptor to pass to ``unwatchFile(_:)``.
    func watchFile(_ path: String) -> Int32? {
        guard usesInotify else { return nil }
        let wd = inotify_add_watch(inotifyFD, path, Self.fileMask)
        guard wd >= 0 else {
            incomplete = true
            return nil
        }
        fileWatchCounts[wd, default: 0] += 1
        return wd
    }

    func unwatchFile(_ wd: Int32?) {
        guard let wd, let count = fileWatchCounts[wd] else { return }
        if count > 1 {
            fileWatchCounts[wd] = count - 1
        } else {
            fileWatchCounts[wd] = nil
            if !directoryDescriptors.contains(wd) { _ = inotify_rm_watch(inotifyFD, wd) }
        }
    }

    /// Watches exactly these directories for new, moved and deleted files (others are dropped).
    func watchDirectories(_ paths: [String]) {
        guard usesInotify else { return }
        let wanted = Set(paths)
        for (path, wd) in directoryWatches where !wanted.contains(path) {
            directoryWatches[path] = nil
            directoryDescriptors.remove(wd)
            if fileWatchCounts[wd] == nil { _ = inotify_rm_watch(inotifyFD, wd) }
        }
        for path in paths where directoryWatches[path] == nil {
            let wd = inotify_add_watch(inotifyFD, path, Self.directoryMask | UInt32(IN_ONLYDIR))
            if wd >= 0 {
                directoryWatches[path] = wd
                directoryDescriptors.insert(wd)
            } else if errno != ENOENT && errno != ENOTDIR {
                incomplete = true
            }
        }
    }

    /// Suspends until a watched file or directory changes or `timeout` passes (no busy loop: without inotify it
    /// sleeps for `timeout`).
    func wait(timeout: Duration) async throws -> WatchWake {
        guard usesInotify else {
            try await Task.sleep(for: timeout)
            return .timeout
        }
        // Events may already be queued (the descriptor is edge-free: it is readable while the queue is not empty).
        var wake = drain()
        if wake != .timeout { return wake }
        let fd = inotifyFD
        let readable = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await IOReactor.shared.waitReadable(fd)
                return true
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
        try Task.checkCancellation()
        if readable { wake = drain() }
        return wake
    }

    /// Reads every queued event and sums them up.
    private func drain() -> WatchWake {
        var wake = WatchWake.timeout
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(inotifyFD, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            var index = 0
            while index + 16 <= count {
                // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[]; }
                let (wd, mask, length): (Int32, UInt32, UInt32) = buffer.withUnsafeBytes { raw in
                    (
                        raw.loadUnaligned(fromByteOffset: index, as: Int32.self),
                        raw.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self),
                        raw.loadUnaligned(fromByteOffset: index + 12, as: UInt32.self)
                    )
                }
                if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    wake.rescan = true
                    wake.fileChanged = true
                } else if directoryDescriptors.contains(wd) {
                    wake.rescan = true
                    if mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF) != 0 { wake.fileChanged = true }
                } else if mask & UInt32(IN_IGNORED) == 0 {
                    wake.fileChanged = true
                    if mask & UInt32(IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB) != 0 { wake.rescan = true }
                }
                index += 16 + Int(length)
            }
        }
        return wake
    }

    func close() {
        guard inotifyFD >= 0 else { return }
        IOReactor.shared.deregister(inotifyFD)
        _ = Glibc.close(inotifyFD)
        inotifyFD = -1
    }
}
