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

        /// Runs `uplink` with posix_spawn and reaps it with wait4, which returns that child's own peak RSS.
        static func spawn(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> Finished {
            let stderrPath = try UplinkProcess.temporaryFile("stderr").path
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_TRUNC, 0o600)
            let argv = ([UplinkProcess.executable.path] + arguments).map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, UplinkProcess.executable.path, &actions, nil, argv, environ)
            guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL) }
            var status: Int32 = 0
            var usage = rusage()
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while wait4(pid, &status, WNOHANG, &usage) == 0 {
                if clock.now > deadline {
                    kill(pid, SIGKILL)
                    _ = wait4(pid, &status, 0, &usage)
                    throw UplinkProcess.TimeoutError()
                }
                usleep(5_000)
            }
            let exited = status & 0x7F == 0
            return Finished(
                status: exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F),
                stderr: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "",
                maxRSSKiB: usage.ru_maxrss)
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
