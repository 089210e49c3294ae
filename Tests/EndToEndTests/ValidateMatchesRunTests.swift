import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension EndToEnd {
    /// `validate` is the whole truth: what `run` refuses at start, `validate` refuses first, with exit 78 and the
    /// location of the option to change; `run` refuses it the same way (78: the systemd unit does not restart it).
    @Suite(.serialized, .timeLimit(.minutes(2))) struct ValidateMatchesRunTests {
        struct Case: CustomTestStringConvertible, Sendable {
            var name: String
            /// `DIR` is replaced by a fresh directory holding a regular file `DIR/afile`.
            var config: String
            /// The `line:column` of the option in the config.
            var location: String
            var expected: String
            var testDescription: String { name }
        }

        static let cases: [Case] = [
            Case(
                name: "a file sink in a directory that does not exist",
                config: """
                    data_dir: DIR/state
                    sources:
                      in: { type: stdin }
                    sinks:
                      out:
                        type: file
                        inputs: [in]
                        path: DIR/missing/out.log
                    """, location: "8:11",
                expected: "option 'path' cannot be opened for writing: the directory DIR/missing does not exist"),
            Case(
                name: "a file sink under a regular file",
                config: """
                    data_dir: DIR/state
                    sources:
                      in: { type: stdin }
                    sinks:
                      out: { type: file, inputs: [in], path: DIR/afile/out.log }
                    """, location: "5:42", expected: "DIR/afile is not a directory"),
            Case(
                name: "a file sink whose path is a directory",
                config: """
                    data_dir: DIR/state
                    sources:
                      in: { type: stdin }
                    sinks:
                      out: { type: file, inputs: [in], path: DIR }
                    """, location: "5:42", expected: "DIR is a directory"),
            Case(
                name: "a file source's checkpoints under a regular file",
                config: """
                    data_dir: DIR/afile/state
                    sources:
                      in: { type: file, include: [DIR/*.log] }
                    sinks:
                      out: { type: stdout, inputs: [in] }
                    """, location: "1:11",
                expected: "'data_dir' cannot be used: DIR/afile is not a directory (source 'in' keeps its state there)"),
            Case(
                name: "a disk buffer under a regular file",
                config: """
                    data_dir: DIR/afile/state
                    sources:
                      in: { type: stdin }
                    sinks:
                      out: { type: stdout, inputs: [in], buffer: { type: disk, max_size: 1MiB } }
                    """, location: "1:11",
                expected: "'data_dir' cannot be used: DIR/afile is not a directory (the disk buffer of sink 'out' lives there)"),
            Case(
                name: "a thing model's request ids under a regular file",
                config: """
                    data_dir: DIR/afile/state
                    sources:
                      in: { type: stdin }
                    transforms:
                      wrap: { type: json, inputs: [in], mode: json }
                      t: { type: thing_model, inputs: [wrap], product_sn: p, device_sn: d }
                    sinks:
                      out: { type: stdout, inputs: [t] }
                    """, location: "1:11",
                expected: "'data_dir' cannot be used: DIR/afile is not a directory (transform 't' keeps its state there)"),
        ]

        @Test(arguments: cases) func validateRefusesWhatRunRefuses(_ test: Case) throws {
            let directory = UplinkProcess.temporaryDirectory().path
            FileManager.default.createFile(atPath: directory + "/afile", contents: Data("x".utf8))
            let path = try UplinkProcess.writeConfig(test.config.replacingOccurrences(of: "DIR", with: directory))
            let expected = test.expected.replacingOccurrences(of: "DIR", with: directory)
            for command in ["validate", "run"] {
                let result = try UplinkProcess.run([command, path], input: Data(), timeout: 30)
                #expect(result.status == 78, "\(command): \(result.stderr)")
                #expect(result.stderr.contains("\(path):\(test.location): error: "), "\(command): \(result.stderr)")
                #expect(result.stderr.contains(expected), "\(command): \(result.stderr)")
                #expect(ErrorMessagesTests.leaks(result.stderr).isEmpty, "Swift type names in: \(result.stderr)")
            }
        }

        /// `uplink test` runs transforms only, their state in a temporary directory: the paths only `run` opens
        /// are not its business (a CI machine runs the tests of a board's config); nor are they `graph`'s and
        /// `plugins --config`'s.
        @Test func testLeavesThePathsOfRunAlone() throws {
            let directory = UplinkProcess.temporaryDirectory().path
            FileManager.default.createFile(atPath: directory + "/afile", contents: Data("x".utf8))
            let path = try UplinkProcess.writeConfig(
                """
                data_dir: \(directory)/afile/state
                sources:
                  in: { type: file, include: [\(directory)/*.log] }
                transforms:
                  wrap: { type: json, inputs: [in], mode: json }
                  t: { type: thing_model, inputs: [wrap], product_sn: p, device_sn: d }
                sinks:
                  out: { type: file, inputs: [t], path: \(directory)/missing/out.log }
                tests:
                  - name: a reading becomes a property post
                    input: { lines: ['{"temp": 21}'] }
                    through: [wrap, t]
                    expect: { count: 1 }
                """)
            let tested = try UplinkProcess.run(["test", path], timeout: 30)
            #expect(tested.status == 0, "\(tested.stdoutText)\(tested.stderr)")
            for command in [["graph", path], ["plugins", "--config", path]] {
                let result = try UplinkProcess.run(command, timeout: 30)
                #expect(result.status == 0, "\(command): \(result.stderr)")
            }
            let validated = try UplinkProcess.run(["validate", path], timeout: 30)
            #expect(validated.status == 78, "\(validated.stderr)")
        }

        /// The default data_dir, which this user may not create: said at the component that needs it.
        @Test func theDefaultDataDirectoryIsCheckedForTheUserWhoRuns() throws {
            let setpriv = "/usr/bin/setpriv"
            let asNobody = getuid() == 0 ? [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] : []
            guard asNobody.isEmpty || FileManager.default.isExecutableFile(atPath: setpriv) else { return }
            let directory = UplinkProcess.temporaryDirectory().path
            let path = try UplinkProcess.writeConfig(
                """
                sources:
                  in: { type: file, include: [\(directory)/*.log] }
                sinks:
                  out: { type: stdout, inputs: [in] }
                """)
            for command in ["validate", "run"] {
                let result = try ErrorMessagesTests.runPrefixed(asNobody, [command, path])
                #expect(result.status == 78, "\(command): \(result.stderr)")
                #expect(
                    result.stderr.contains(
                        "\(path):2:3: error: 'data_dir' (default /var/lib/uplink) cannot be used: /var/lib/uplink cannot be"),
                    "\(command): \(result.stderr)")
                // "… created in /var/lib: permission denied", or "… written: …" where a root run made it already.
                #expect(result.stderr.contains("permission denied (source 'in' keeps its state there)"),
                    "\(command): \(result.stderr)")
            }
        }
    }
}
