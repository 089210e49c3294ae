import Foundation
import Testing

extension EndToEnd {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct StdinPipelineTests {
        @Test func stdinThroughJSONToStdoutKeepsEveryLine() throws {
            let config = try UplinkProcess.writeConfig(
                """
                sources:
                  probe: { type: stdin }
                transforms:
                  wrap: { type: json, inputs: [probe], sequence_field: seq }
                sinks:
                  out: { type: stdout, inputs: [wrap] }
                """)
            var input = Data()
            let count = 20_000
            for index in 0..<count { input.append(contentsOf: Array("line \(index) \"quoted\" \\ tab\there\n".utf8)) }
            input.append(contentsOf: [0x62, 0x61, 0x64, 0xFF, 0xFE, 0x0A])  // invalid UTF-8 is data, not an error
            input.append(contentsOf: Array("no newline at the end".utf8))
            let result = try UplinkProcess.run(["run", config], input: input)
            #expect(result.status == 0, "stderr: \(result.stderr)")
            let lines = result.stdoutText.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            #expect(lines.count == count + 2)
            for (index, line) in lines.prefix(count).enumerated() where index % 997 == 0 {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                #expect(object["message"] as? String == "line \(index) \"quoted\" \\ tab\there")
                #expect(object["seq"] as? Int == index + 1)
            }
            let bad = try JSONSerialization.jsonObject(with: Data(lines[count].utf8)) as! [String: Any]
            #expect(bad["message"] as? String == "bad\u{FFFD}\u{FFFD}")
            #expect(lines.last?.contains("no newline at the end") == true)
        }

        @Test func rawBytesPassThroughUnchanged() throws {
            let config = try UplinkProcess.writeConfig("sources:\n  in: { type: stdin }\nsinks:\n  out: { type: stdout, inputs: [in] }\n")
            var input = Data()
            for byte in 0...255 where byte != 0x0A { input.append(UInt8(byte)) }
            input.append(0x0A)
            let result = try UplinkProcess.run(["run", config], input: input)
            #expect(result.status == 0, "stderr: \(result.stderr)")
            // Only a \r right before the newline would be dropped (CRLF framing); a \r inside a line is data.
            #expect(result.stdout == input)
        }

        @Test func fileSinkAppendsAndDrainsOnSIGTERM() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let output = directory.appendingPathComponent("out.log").path
            let config = try UplinkProcess.writeConfig(
                """
                shutdown_timeout: 10s
                sources:
                  in: { type: stdin }
                sinks:
                  file: { type: file, inputs: [in], path: "\(output)" }
                """)
            let process = Process()
            process.executableURL = UplinkProcess.executable
            process.arguments = ["run", config]
            let stdin = Pipe()
            process.standardInput = stdin
            process.standardError = FileHandle.nullDevice
            try process.run()
            for index in 0..<1000 { try stdin.fileHandleForWriting.write(contentsOf: Data("event \(index)\n".utf8)) }
            // Wait until everything written has reached the file, with stdin still open, then ask to stop.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let lines = (try? String(contentsOfFile: output, encoding: .utf8))?.split(separator: "\n").count ?? 0
                if lines == 1000 { break }
                usleep(20_000)
            }
            kill(process.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: process, timeout: 20)
            #expect(process.terminationStatus == 0)
            let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 1000)
            #expect(lines.last == "event 999")
            try? stdin.fileHandleForWriting.close()
        }
    }
}

extension EndToEnd {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct CommandLineTests {
        @Test func validateExitsZeroOnValidAnd78OnInvalidWithLocations() throws {
            let good = try UplinkProcess.writeConfig("sources:\n  in: { type: stdin }\nsinks:\n  out: { type: stdout, inputs: [in] }\n")
            let ok = try UplinkProcess.run(["validate", good])
            #expect(ok.status == 0)
            #expect(ok.stdoutText.contains("configuration valid"))

            let bad = try UplinkProcess.writeConfig(
                "sources:\n  in: { type: stdin, delimter: x }\nsinks:\n  out: { type: stdot, inputs: [in] }\n", name: "bad.yaml")
            let failed = try UplinkProcess.run(["validate", bad])
            #expect(failed.status == 78)
            #expect(failed.stderr.contains("bad.yaml:2:22: error: unknown option 'delimter'; did you mean 'delimiter'?"))
            #expect(failed.stderr.contains("bad.yaml:4:16: error: unknown sink type 'stdot'; did you mean 'stdout'?"))

            let run = try UplinkProcess.run(["run", bad])
            #expect(run.status == 78)
        }

        @Test func missingFileIsAClearError() throws {
            let result = try UplinkProcess.run(["validate", "/nonexistent/pipeline.yaml"])
            #expect(result.status == 78)
            #expect(result.stderr == "uplink: cannot read /nonexistent/pipeline.yaml: no such file or directory\n", "\(result.stderr)")
        }

        @Test func graphPrintsDotAndMermaid() throws {
            let config = try UplinkProcess.writeConfig(
                "sources:\n  in: { type: stdin }\ntransforms:\n  wrap: { type: json, inputs: [in] }\nsinks:\n  out: { type: stdout, inputs: [wrap] }\n")
            let dot = try UplinkProcess.run(["graph", config])
            #expect(dot.status == 0)
            #expect(dot.stdoutText.hasPrefix("digraph uplink {"))
            #expect(dot.stdoutText.contains("\"in\" -> \"wrap\" [label=\"raw\"];"))
            let mermaid = try UplinkProcess.run(["graph", "--format", "mermaid", config])
            #expect(mermaid.stdoutText.hasPrefix("flowchart LR"))
        }

        @Test func pluginsListsTypesAndOptions() throws {
            let result = try UplinkProcess.run(["plugins"])
            #expect(result.status == 0)
            #expect(result.stdoutText.contains("stdin  [- -> raw]"))
            #expect(result.stdoutText.contains("json  [raw -> record]"))
            #expect(result.stdoutText.contains("- max_line_bytes: size, default 1MiB"))
        }
    }
}
