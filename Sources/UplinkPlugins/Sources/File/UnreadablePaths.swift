import Synchronization
import UplinkCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The paths a file source may not read: a file it cannot open, a directory it cannot list, a pattern's
/// directory that is a file or a symbolic-link loop. A path that does not exist (yet) is not one of them.
///
/// Each scan hands over what it found; a path is warned about (with its errno) and counted as an error when it
/// becomes unreadable or fails differently, not on every scan, and logged again when it can be read. While any
/// path is unreadable the source reports a failure, which `/health` turns into "unhealthy" after
/// `api.unhealthy_after`, as it does for a sink that keeps failing. Shared with the API's reader, so it locks.
final class UnreadablePaths: Sendable {
    struct Problem: Sendable, Equatable {
        var errno: Int32
        var since: ContinuousClock.Instant
    }

    /// What a scan changed, for the log.
    enum Change: Equatable {
        case unreadable(path: String, errno: Int32)
        case readable(path: String)
    }

    private let problems = Mutex<[String: Problem]>([:])

    /// At most this many paths are kept (a `**` over a huge unreadable tree): the rest are counted in the
    /// failure's reason but not tracked one by one, so memory stays bounded.
    static let limit = 256

    /// Replaces the unreadable paths with those of the latest scan (`found`: path → errno); returns the paths
    /// that became unreadable (or fail with another errno) and those that can be read again, sorted.
    func update(_ found: [String: Int32], now: ContinuousClock.Instant = .now) -> [Change] {
        problems.withLock { problems in
            var changes: [Change] = []
            for path in problems.keys.sorted() where found[path] == nil {
                problems[path] = nil
                changes.append(.readable(path: path))
            }
            for (path, errno) in found.sorted(by: { $0.key < $1.key }) {
                if let known = problems[path], known.errno == errno { continue }
                guard problems[path] != nil || problems.count < Self.limit else { continue }
                problems[path] = Problem(errno: errno, since: problems[path]?.since ?? now)
                changes.append(.unreadable(path: path, errno: errno))
            }
            return changes
        }
    }

    /// The paths unreadable now, with their errno.
    var current: [String: Int32] { problems.withLock { $0.mapValues(\.errno) } }

    /// A failure while any path is unreadable, since the first of them became so.
    func report() -> ComponentReport {
        let problems = problems.withLock { $0 }
        guard let first = problems.min(by: { ($0.value.since, $0.key) < ($1.value.since, $1.key) }) else {
            return ComponentReport()
        }
        var reason = "cannot read \(first.key): \(Self.describe(first.value.errno))"
        if problems.count > 1 { reason += " (and \(problems.count - 1) more paths)" }
        return ComponentReport(failure: ComponentReport.Failure(since: first.value.since, reason: reason))
    }

    /// `Permission denied (errno 13)`.
    static func describe(_ errno: Int32) -> String {
        "\(String(cString: strerror(errno))) (errno \(errno))"
    }
}
