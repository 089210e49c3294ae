import Foundation
import Testing

extension EndToEnd {
    /// Records `deadband` suppresses are a final answer: the file tail's checkpoint moves past them, so a restart
    /// neither re-reads nor re-sends them.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct DeadbandCheckpointTests {
        @Test func suppressedLinesLetTheTailCheckpointMoveOn() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let log = directory.appendingPathComponent("app.log").path
            let output = directory.appendingPathComponent("out.log").path
            let configPath = directory.appendingPathComponent("pipeline.yaml").path
            try """
                data_dir: \(directory.appendingPathComponent("state").path)
                sources:
                  app: { type: file, include: ["\(log)"], read_from: beginning, checkpoint_interval: 100ms }
                transforms:
                  wrap: { type: json, inputs: [app], mode: json }
                  band: { type: deadband, inputs: [wrap], fields: { temp: 0.5 } }
                sinks:
                  out: { type: file, inputs: [band], path: "\(output)" }
                """.write(toFile: configPath, atomically: true, encoding: .utf8)
            func append(_ range: Range<Int>) throws {
                let text = range.map { #"{"seq":\#($0),"temp":20}"# + "\n" }.joined()
                if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
                let handle = try #require(FileHandle(forWritingAtPath: log))
                handle.seekToEndOfFile()
                handle.write(Data(text.utf8))
                handle.closeFile()
            }
            func lines() -> [String] {
                ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            }
            func waitFor(_ condition: () -> Bool) {
                let deadline = Date().addingTimeInterval(30)
                while !condition(), Date() < deadline { usleep(20_000) }
            }

            func checkpointOffsets() -> [Int] {
                let offset = TailCheckpoint.offset(stateDirectory: directory.appendingPathComponent("state"))
                return offset > 0 ? [offset] : []
            }
            func logSize() -> Int { ((try? FileManager.default.attributesOfItem(atPath: log))?[.size] as? Int) ?? -1 }

            try append(0..<1)
            var agent = try DeliveryFaultTests.startAgent(configPath)
            waitFor { lines().count == 1 }
            // 99 readings that do not move: read after the first was sent, in chunks where nothing passes.
            try append(1..<100)
            waitFor { checkpointOffsets() == [logSize()] }
            #expect(checkpointOffsets() == [logSize()], "the checkpoint moved past the suppressed lines")
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            #expect(agent.terminationStatus == 0)
            #expect(lines().count == 1, "\(lines())")

            // After a restart the deadband starts afresh: the first record it reads passes. It must be line 100,
            // not line 1 again.
            try append(100..<101)
            agent = try DeliveryFaultTests.startAgent(configPath)
            waitFor { lines().count == 2 }
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            #expect(lines().count == 2 && lines().last?.contains(#""seq":100,"#) == true, "\(lines())")
        }
    }
}
