import Foundation
import Synchronization
import Testing
import UplinkCore

@testable import UplinkPlugins
import UplinkTestSupport

/// The `exec` source with real processes: scheduled runs with their exit status, timeouts that kill the
/// process group, streaming with restarts, stderr kept out of the data.
@Suite(.serialized, .timeLimit(.minutes(1))) struct ExecSourceTests {
    func execSource(_ options: String) throws -> ExecSource {
        try #require(try buildSource("{ type: exec, \(options) }") as? ExecSource)
    }

    /// True while a process runs (a zombie waiting for its parent, here possibly a slow PID 1, does not).
    func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return !stat[close...].hasPrefix(") Z") && !stat[close...].hasPrefix(") X")
    }

    @Test func scheduledRunsCarryTheirExitStatusEnvironmentAndDirectory() async throws {
        let directory = sourceTemporaryDirectory("exec")
        let harness = SourceHarness()
        harness.start(
            try execSource(
                """
                command: [sh, -c, 'echo "$GREETING"; pwd; printf "no newline"; exit 3'], interval: 200ms,
                env: { GREETING: "hello there" }, working_dir: '\(directory)'
                """))
        // It failed twice in full runs on a loaded machine and never since; what was received says which part.
        #expect(await harness.waitFor(count: 6), "received: \(harness.events.map { ($0.text, $0.attributes) })")
        await harness.stop()
        let events = harness.events
        // A failed wait ends this test, not the whole test process (indexing below).
        try #require(events.count >= 6)
        #expect(
            Array(events.prefix(6).map(\.text)) == [
                "hello there", directory, "no newline", "hello there", directory, "no newline",
            ])
        #expect(
            events.allSatisfy { $0.attributes["exit_code"] == "3" && $0.attributes["pid"] != nil },
            "\(events.map(\.attributes))")
        #expect(events[0].attributes["pid"] != events[3].attributes["pid"])
        #expect(events[0].location?.hasPrefix("sh -c") == true)
    }

    @Test func shellCommandLines() async throws {
        let harness = SourceHarness()
        harness.start(try execSource("command: ['printf \"one\\\\ntwo\\\\n\" | tr o 0'], shell: true, interval: 10s"))
        #expect(await harness.waitFor(count: 2))
        await harness.stop()
        #expect(harness.lines == ["0ne", "tw0"])
        #expect(harness.events.allSatisfy { $0.attributes["exit_code"] == "0" })
    }

    @Test func aRunThatOverrunsItsTimeoutIsKilledWithItsProcessGroup() async throws {
        let harness = SourceHarness()
        let clock = ContinuousClock()
        let start = clock.now
        // The shell starts a background sleeper (a grandchild in the same group) and waits.
        harness.start(
            try execSource(
                "command: [sh, -c, 'echo started; sleep 30 & echo $!; wait; echo never'], interval: 1m, timeout: 300ms")
        )
        #expect(await harness.waitFor(count: 2))
        let elapsed = clock.now - start
        await harness.stop()
        let events = harness.events
        try #require(events.count >= 2)
        #expect(events.map(\.text).first == "started")
        #expect(!events.map(\.text).contains("never"))
        #expect(events[0].attributes["timed_out"] == "true")
        #expect(events[0].attributes["signal"] == "9")
        // Killed at the 300 ms timeout, not after the sleeper's 30 s (slack for a loaded CI machine).
        #expect(elapsed < .seconds(15))
        let group = try #require(Int32(events[0].attributes["pid"] ?? ""))
        let sleeper = try #require(Int32(events[1].text))
        #expect(await waitUntil(timeout: .seconds(2)) { !alive(group) && !alive(sleeper) })
    }

    @Test func streamingCommandsAreRestartedWithBackoff() async throws {
        let harness = SourceHarness()
        let source = try execSource(
            "command: [sh, -c, 'echo x; echo y; echo oops >&2; exit 1'], mode: streaming, restart_delay: 50ms, max_restart_delay: 200ms"
        )
        harness.start(source)
        #expect(await harness.waitFor(count: 6))
        await harness.stop()
        // stderr is logged, not sent; each run is a new process.
        #expect(Array(harness.lines.prefix(6)) == ["x", "y", "x", "y", "x", "y"])
        let pids = Set(harness.events.compactMap { $0.attributes["pid"] })
        #expect(pids.count >= 3)
    }

    @Test func streamingWithoutRestartEndsTheSourceWhenTheCommandExits() async throws {
        let harness = SourceHarness()
        harness.start(try execSource("command: [seq, '1', '1000'], mode: streaming, restart: false"))
        let error = await harness.finish()
        #expect(error == nil)
        #expect(harness.lines == (1...1000).map(String.init))
    }

    @Test func cancellingTheSourceKillsAStreamingCommand() async throws {
        let harness = SourceHarness()
        harness.start(try execSource("command: [sh, -c, 'echo $$$$; exec sleep 30'], mode: streaming"))
        #expect(await harness.waitFor(count: 1))
        let pid = try #require(Int32(harness.lines.first ?? ""))
        #expect(alive(pid))
        let clock = ContinuousClock()
        let start = clock.now
        await harness.stop()
        // Killed at once, not after its 30 s sleep (slack for a loaded CI machine).
        #expect(clock.now - start < .seconds(10))
        #expect(kill(pid, 0) != 0)  // killed and reaped by the source: not even a zombie
    }

    @Test func aCommandThatCannotStartIsCountedAndRetried() async throws {
        let harness = SourceHarness()
        harness.start(try execSource("command: [/nonexistent/uplink-test-command], interval: 50ms"))
        #expect(await waitUntil { harness.metrics.errors.load(ordering: .relaxed) >= 2 })
        await harness.stop()
        #expect(harness.events.isEmpty)
    }

    @Test func configurationIsValidated() {
        #expect(configErrors("{ type: exec, command: [df, -P] }").isEmpty)
        #expect(configErrors("{ type: exec }").contains { $0.contains("missing required option 'command'") })
        #expect(configErrors("{ type: exec, command: [] }").contains { $0.contains("program name") })
        #expect(configErrors("{ type: exec, command: 'df -P' }").contains { $0.contains("must be a list") })
        #expect(configErrors("{ type: exec, command: [df], interval: 0 }").contains { $0.contains("more than 0") })
        #expect(
            configErrors("{ type: exec, command: [df], mode: cron }").contains { $0.contains("scheduled, streaming") })
        #expect(configErrors("{ type: exec, command: [df], env: { 'A=B': x } }").contains { $0.contains("no '='") })
    }
}
