import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension EndToEnd {
    /// Configs written to hurt: `uplink validate` refuses them with a location and exit 78, in bounded memory.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct HostileConfigTests {
        struct Finished {
            var status: Int32
            var stderr: String
            /// The child's peak resident set, from its own rusage (wait4), in KiB.
            var maxRSSKiB: Int
        }

        /// Runs `uplink` and measures its own peak RSS. Not with posix_spawn from this process and wait4: the
        /// kernel carries the spawning process's peak RSS into a child across exec (vfork shares the test
        /// runner's memory, and exec keeps its high-water mark), so the figure was the whole test runner's
        /// (223 MB in a full suite run). A small Python process forks a fresh child for `uplink` and reports
        /// that child's wait4 rusage instead.
        static func spawn(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> Finished {
            let stderrPath = try UplinkProcess.temporaryFile("stderr").path
            let rssPath = try UplinkProcess.temporaryFile("maxrss").path
            let measure = """
                import os, sys
                pid = os.fork()
                if pid == 0:
                    os.execv(sys.argv[2], sys.argv[2:])
                _, status, usage = os.wait4(pid, 0)
                open(sys.argv[1], "w").write(str(usage.ru_maxrss))
                sys.exit(os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", measure, rssPath, UplinkProcess.executable.path] + arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: stderrPath)
            try process.run()
            try UplinkProcess.wait(for: process, timeout: Double(timeout.components.seconds))
            let rss = (try? String(contentsOfFile: rssPath, encoding: .utf8)).flatMap { Int($0) }
            return Finished(
                status: process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus,
                stderr: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "",
                maxRSSKiB: try #require(rss, "the measuring process did not report the peak RSS"))
        }

        /// `levels` anchored lists of 10, each made of 10 aliases of the one before, indented by `indent`.
        static func laughs(levels: Int, indent: String) -> String {
            var lines = [indent + #"a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]"#]
            for level in 1..<levels {
                let items = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ",")
                lines.append(indent + "a\(level): &a\(level) [\(items)]")
            }
            return lines.joined(separator: "\n") + "\n"
        }

        @Test func aBillionLaughsIsRefusedWithItsLocation() throws {
            let bomb = Self.laughs(levels: 9, indent: "")
            #expect(bomb.utf8.count < 520)
            let path = try UplinkProcess.writeConfig(bomb, name: "laughs.yaml")
            let result = try Self.spawn(["validate", path])
            #expect(result.status == 78, "\(result.stderr)")
            #expect(result.stderr.contains("laughs.yaml:5:"), "\(result.stderr)")
            #expect(result.stderr.contains("once its aliases are expanded"), "\(result.stderr)")
            // Before the limit counted expanded nodes, this took several GB and crashed.
            #expect(result.maxRSSKiB < 200 << 10, "peak RSS \(result.maxRSSKiB) KiB")
        }

        @Test func aBombInAProcessPluginsConfigIsRefusedToo() throws {
            let config = """
                sources:
                  in: { type: stdin }
                transforms:
                  p:
                    type: process
                    inputs: [in]
                    command: [cat]
                    config:
                \(Self.laughs(levels: 7, indent: "      "))sinks:
                  out: { type: stdout, inputs: [p] }
                """
            let path = try UplinkProcess.writeConfig(config, name: "plugin.yaml")
            let result = try Self.spawn(["validate", path])
            #expect(result.status == 78, "\(result.stderr)")
            #expect(result.stderr.contains("plugin.yaml:13:"), "\(result.stderr)")
            #expect(result.stderr.contains("once its aliases are expanded"), "\(result.stderr)")
            #expect(result.maxRSSKiB < 200 << 10, "peak RSS \(result.maxRSSKiB) KiB")
        }

        @Test func duplicateKeysAreErrorsEvenInsideAPluginsConfig() throws {
            let path = try UplinkProcess.writeConfig(
                """
                sources:
                  in: { type: stdin }
                transforms:
                  p:
                    type: process
                    inputs: [in]
                    command: [cat]
                    config:
                      threshold: 10
                      threshold: 20
                sinks:
                  out: { type: stdout, inputs: [p] }
                  out: { type: stdout, inputs: [in] }
                """, name: "dups.yaml")
            let result = try Self.spawn(["validate", path])
            #expect(result.status == 78)
            #expect(result.stderr.contains("dups.yaml:10:7: error: key 'threshold' is written twice in this mapping (first at line 9, column 7)"), "\(result.stderr)")
            #expect(result.stderr.contains("dups.yaml:13:3: error: key 'out' is written twice"), "\(result.stderr)")
        }
    }
}
