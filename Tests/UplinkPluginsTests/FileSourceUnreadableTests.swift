import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore

@testable import UplinkPlugins

#if canImport(Glibc)
    import Glibc
#endif

/// A `file` source whose paths it may not read says so: a warning with the path and the errno, once per path
/// (not once per scan), an error counted, and a failure `/health` reads, until the path can be read.
///
/// Tests run as root in CI, where `chmod 000` does not stop a read; these use failures permissions cannot
/// bypass: a directory of the pattern that is a regular file (ENOTDIR) and a symbolic-link loop (ELOOP). The
/// permission case (EACCES) runs here only when not root; `FileSourceEndToEndTests` runs it as root by starting
/// the binary with its privileges dropped.
@Suite(.serialized, .timeLimit(.minutes(1))) struct FileSourceUnreadableTests {
    /// Keeps warnings and infos, for the test to count.
    final class RecordedLog: Sendable {
        let lines = Mutex<[(Logger.Level, String, Logger.Metadata)]>([])

        var logger: Logger {
            Logger(label: "test") { _ in Handler(log: self) }
        }

        func messages(_ text: String) -> [Logger.Metadata] {
            lines.withLock { $0.filter { $0.1 == text }.map(\.2) }
        }

        struct Handler: LogHandler {
            let log: RecordedLog
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .info

            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }

            func log(event: LogEvent) {
                let merged = metadata.merging(event.metadata ?? [:]) { $1 }
                log.lines.withLock { $0.append((event.level, "\(event.message)", merged)) }
            }
        }
    }

    static let warning = "cannot read a path the source is configured to read; retrying at each scan"

    /// Adds files one at a time, each found by a scan of its own, so the unreadable path is scanned again and
    /// again; returns when the last one's line arrived.
    func scanSeveralTimes(_ harness: SourceHarness, directory: String, already: Int) async {
        for index in 0..<3 {
            append("new-\(index)\n", to: "\(directory)/new-\(index).log")
            #expect(await harness.waitFor(count: already + index + 1))
        }
    }

    @Test func aDirectoryOfThePatternThatIsAFileIsReportedOnceWithItsErrno() async throws {
        let directory = sourceTemporaryDirectory("enotdir")
        // `app` should be the directory the pattern looks into; it is a file.
        append("not a directory\n", to: directory + "/app")
        let log = RecordedLog()
        let harness = SourceHarness(logger: log.logger)
        let source = try #require(
            try buildSource("{ type: file, include: [\(directory)/app/*.log, \(directory)/*.log], scan_interval: 50ms }")
                as? FileTailSource)
        harness.start(source)
        await scanSeveralTimes(harness, directory: directory, already: 0)

        let warnings = log.messages(Self.warning)
        #expect(warnings.count == 1, "once per path, not once per scan: \(warnings)")
        #expect(warnings.first?["file.path"] == .string(directory + "/app"))
        #expect(warnings.first?["file.errno"] == .string("\(ENOTDIR)"))
        #expect(warnings.first?["error"] == .string("Not a directory (errno 20)"))
        #expect(harness.metrics.snapshot.errors == 1)
        let failure = try #require(harness.metrics.report().failure, "/health must see the source failing")
        #expect(failure.reason == "cannot read \(directory)/app: Not a directory (errno 20)")

        // Fixed: `app` becomes the directory it should be, its file is read and the failure ends.
        try FileManager.default.removeItem(atPath: directory + "/app")
        try FileManager.default.createDirectory(atPath: directory + "/app", withIntermediateDirectories: false)
        append("fixed\n", to: directory + "/app/x.log")
        #expect(await harness.waitFor(count: 4))
        await harness.stop()
        #expect(harness.lines.contains("fixed"))
        #expect(log.messages("path can be read again").first?["file.path"] == .string(directory + "/app"))
        #expect(harness.metrics.report().failure == nil)
        #expect(harness.metrics.snapshot.errors == 1)
    }

    @Test func aSymbolicLinkLoopIsReported() async throws {
        let directory = sourceTemporaryDirectory("eloop")
        try FileManager.default.createSymbolicLink(atPath: directory + "/loop.log", withDestinationPath: "loop.log")
        let log = RecordedLog()
        let harness = SourceHarness(logger: log.logger)
        let source = try #require(
            try buildSource("{ type: file, include: [\(directory)/loop.log, \(directory)/new-*.log], scan_interval: 50ms }")
                as? FileTailSource)
        harness.start(source)
        await scanSeveralTimes(harness, directory: directory, already: 0)
        await harness.stop()
        let warnings = log.messages(Self.warning)
        #expect(warnings.count == 1, "\(warnings)")
        #expect(warnings.first?["file.path"] == .string(directory + "/loop.log"))
        #expect(warnings.first?["file.errno"] == .string("\(ELOOP)"))
        #expect(harness.metrics.snapshot.errors == 1)
    }

    /// Only meaningful when permissions apply: as root this records nothing and checks nothing.
    @Test(.enabled(if: geteuid() != 0, "root reads whatever the mode says")) func aFileWithoutReadPermission() async throws {
        let directory = sourceTemporaryDirectory("eacces")
        append("secret\n", to: directory + "/private.log")
        chmod(directory + "/private.log", 0)
        defer { chmod(directory + "/private.log", 0o644) }
        let log = RecordedLog()
        let harness = SourceHarness(logger: log.logger)
        harness.start(try #require(try buildSource("{ type: file, include: [\(directory)/*.log], scan_interval: 50ms }") as? FileTailSource))
        await scanSeveralTimes(harness, directory: directory, already: 0)
        await harness.stop()
        let warnings = log.messages(Self.warning)
        #expect(warnings.count == 1)
        #expect(warnings.first?["file.errno"] == .string("\(EACCES)"))
    }

    @Test func theTrackerIsBoundedAndReportsChangesOnly() {
        let tracker = UnreadablePaths()
        #expect(tracker.update(["/a": EACCES]) == [.unreadable(path: "/a", errno: EACCES)])
        #expect(tracker.update(["/a": EACCES]) == [])
        #expect(tracker.update(["/a": ELOOP]) == [.unreadable(path: "/a", errno: ELOOP)])
        #expect(tracker.update([:]) == [.readable(path: "/a")])
        let many = Dictionary(uniqueKeysWithValues: (0..<1000).map { ("/p\($0)", EACCES) })
        #expect(tracker.update(many).count == UnreadablePaths.limit)
        #expect(tracker.report().failure?.reason.hasSuffix("(and \(UnreadablePaths.limit - 1) more paths)") == true)
    }
}
