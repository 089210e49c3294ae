import Foundation
import Testing

extension EndToEnd {
    /// `filter`, `route` and `remap` in a real `uplink` process: real files, a real tail checkpoint, exit codes.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct EdgeStagesEndToEndTests {
        private func append(_ lines: [String], to path: String) throws {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(lines.map { $0 + "\n" }.joined().utf8))
            try handle.close()
        }

        private func lines(_ path: String) -> [String] {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        /// Polls `condition` every 20 ms for up to `timeout`: the readiness signal is a file's content.
        private func eventually(timeout: TimeInterval = 20, _ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if condition() { return true }
                usleep(20_000)
            }
            return condition()
        }

        @Test func filteredLinesMoveTheTailCheckpointAndRoutesReachTheirSinks() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let log = directory.appendingPathComponent("sensor.log").path
            FileManager.default.createFile(atPath: log, contents: nil)
            let alarms = directory.appendingPathComponent("alarms.jsonl").path
            let readings = directory.appendingPathComponent("readings.jsonl").path
            let config = try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.path)/state
                sources:
                  app: { type: file, include: ['\(log)'], checkpoint_interval: 100ms }
                transforms:
                  parse: { type: json, inputs: [app], mode: kv, types: { temp: float, n: int } }
                  plausible: { type: filter, inputs: [parse], condition: '.status == "ok" && .temp > -40 && .temp < 125' }
                  split:
                    type: route
                    inputs: [plausible]
                    routes:
                      alarms: '.temp > 90'
                      readings: 'true'
                  units:
                    type: remap
                    inputs: [split.readings]
                    set: { temp_f: 'round(.temp * 9 / 5 + 32, 1)' }
                    remove: [status]
                sinks:
                  alarm_file: { type: file, inputs: [split.alarms], path: '\(alarms)' }
                  reading_file: { type: file, inputs: [units], path: '\(readings)' }
                """)
            let validation = try UplinkProcess.run(["validate", config])
            #expect(validation.status == 0, "\(validation.stderr)")

            let agent = try RunningAgent(config: config, directory: directory)
            #expect(agent.waitForLog("tailing file"), "\(agent.log)")
            // Only lines the filter drops: nothing reaches a sink, yet the checkpoint must pass them.
            try append((0..<200).map { "n=\($0) status=noise temp=20" }, to: log)
            let size = (try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? -1
            let state = directory.appendingPathComponent("state")
            #expect(
                eventually { TailCheckpoint.offset(stateDirectory: state) == size },
                "the checkpoint did not reach \(size): \(TailCheckpoint.offset(stateDirectory: state))")

            try append(["n=1000 status=ok temp=21.5", "n=1001 status=ok temp=95", "n=1002 status=ok temp=500"], to: log)
            #expect(eventually { lines(readings).count == 2 && lines(alarms).count == 1 })
            #expect(try agent.stop() == 0, "\(agent.log)")
            #expect(lines(alarms) == [#"{"n":1001,"status":"ok","temp":95.0}"#])
            #expect(lines(readings) == [#"{"n":1000,"temp":21.5,"temp_f":70.7}"#, #"{"n":1001,"temp":95.0,"temp_f":203.0}"#])

            // A restart resumes after everything: nothing filtered or delivered is read again.
            let again = try RunningAgent(config: config, directory: directory)
            #expect(again.waitForLog("resuming file"), "\(again.log)")
            try append(["n=1003 status=ok temp=22"], to: log)
            #expect(eventually { lines(readings).count == 3 })
            #expect(try again.stop() == 0, "\(again.log)")
            #expect(lines(readings).count == 3)
            #expect(lines(alarms).count == 1)
        }

        @Test func validateRefusesABadExpressionAtItsColumnWithExit78() throws {
            func validate(condition: String, reader: String) throws -> UplinkProcess.Result {
                let config = try UplinkProcess.writeConfig(
                    """
                    sources:
                      in: { type: stdin }
                    transforms:
                      parse: { type: json, inputs: [in], mode: json }
                      keep: { type: filter, inputs: [parse], condition: '\(condition)' }
                      split: { type: route, inputs: [keep], routes: { hot: '.temp > 90' } }
                    sinks:
                      out: { type: stdout, inputs: [\(reader)] }
                    """)
                return try UplinkProcess.run(["validate", config])
            }
            let badFunction = try validate(condition: ".temp > 3 && contain(.host, \"plc\")", reader: "split.hot")
            #expect(badFunction.status == 78)
            #expect(
                badFunction.stderr.contains("pipeline.yaml:5:67: error: 'condition': unknown function 'contain'; did you mean 'contains'?"),
                "\(badFunction.stderr)")
            let badOutput = try validate(condition: ".temp > 3", reader: "split.hott")
            #expect(badOutput.status == 78)
            #expect(
                badOutput.stderr.contains("pipeline.yaml:8:33: error: 'split' has no output 'hott'; did you mean 'split.hot'?"),
                "\(badOutput.stderr)")
            let good = try validate(condition: ".temp > 3", reader: "split.hot")
            #expect(good.status == 0, "\(good.stderr)")
        }

        @Test func uplinkTestRunsEveryBranchOfARoute() throws {
            let config = try UplinkProcess.writeConfig(
                """
                sources:
                  in: { type: stdin }
                transforms:
                  parse: { type: json, inputs: [in], mode: json }
                  split: { type: route, inputs: [parse], routes: { alarms: '.level == "alarm"' } }
                  units: { type: remap, inputs: [split._unmatched], set: { temp_f: '.temp * 9 / 5 + 32' } }
                sinks:
                  out: { type: stdout, inputs: [split.alarms, units] }
                tests:
                  - name: alarms go their way
                    input: { lines: ['{"level":"alarm","temp":99}', '{"temp":20}'] }
                    through: [parse, split.alarms]
                    expect: { count: 1, events: [{ json: { level: alarm } }] }
                  - name: the rest is converted
                    input: { lines: ['{"level":"alarm","temp":99}', '{"temp":20}'] }
                    through: [parse, split._unmatched, units]
                    expect: { count: 1, events: [{ json: { temp_f: 68.0 } }] }
                """)
            let result = try UplinkProcess.run(["test", config])
            #expect(result.status == 0, "\(result.stdoutText)\n\(result.stderr)")
            #expect(result.stdoutText.contains("ok   "), "\(result.stdoutText)")
        }

        @Test func aReloadWithAChangedConditionReplacesTheRouteInPlace() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let log = directory.appendingPathComponent("sensor.log").path
            FileManager.default.createFile(atPath: log, contents: nil)
            let hot = directory.appendingPathComponent("hot.jsonl").path
            let rest = directory.appendingPathComponent("rest.jsonl").path
            let configPath = directory.appendingPathComponent("pipeline.yaml").path
            func writeConfig(threshold: Int) throws {
                try """
                    data_dir: \(directory.path)/state
                    sources:
                      app: { type: file, include: ['\(log)'] }
                    transforms:
                      parse: { type: json, inputs: [app], mode: kv, types: { temp: int, n: int } }
                      split: { type: route, inputs: [parse], routes: { hot: '.temp > \(threshold)' } }
                    sinks:
                      hot_file: { type: file, inputs: [split.hot], path: '\(hot)' }
                      rest_file: { type: file, inputs: [split._unmatched], path: '\(rest)' }
                    """.write(toFile: configPath, atomically: true, encoding: .utf8)
            }
            try writeConfig(threshold: 50)
            let agent = try RunningAgent(config: configPath, directory: directory)
            #expect(agent.waitForLog("tailing file"), "\(agent.log)")
            try append(["n=1 temp=60", "n=2 temp=40"], to: log)
            #expect(eventually { lines(hot).count == 1 && lines(rest).count == 1 })

            try writeConfig(threshold: 30)
            kill(agent.process.processIdentifier, SIGHUP)
            #expect(agent.waitForLog("reloading in place"), "\(agent.log)")
            #expect(agent.log.contains(#"replaced 1 [\"split\"]"#), "\(agent.log)")
            try append(["n=3 temp=40"], to: log)
            #expect(eventually { lines(hot).count == 2 })
            #expect(try agent.stop() == 0, "\(agent.log)")
            #expect(lines(hot) == [#"{"n":1,"temp":60}"#, #"{"n":3,"temp":40}"#])
            #expect(lines(rest) == [#"{"n":2,"temp":40}"#])
        }
    }
}
