import Foundation
import Testing

/// What the `uplink` executable sets up before the shared libraries' constructors run (CUplinkStartup), checked on
/// the real process.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ProcessStartupTests {
    /// GnuTLS, loaded through libcurl's librtmp, asks the executable whether to initialise itself; the answer has
    /// to be bound to the executable's `_gnutls_global_init_skip`, not GnuTLS's own weak default.
    @Test func gnuTLSConstructorFindsTheExecutablesSkipSymbol() throws {
        let result = try UplinkProcess.run(["--version"], environment: ["LD_DEBUG": "bindings"])
        #expect(result.status == 0, "stderr: \(result.stderr.suffix(2000))")
        let loadsGnuTLS = result.stderr.contains("libgnutls.so")
        // A libcurl built without librtmp loads no GnuTLS: nothing to skip then.
        guard loadsGnuTLS else { return }
        let binding = result.stderr.split(separator: "\n").first { $0.contains("`_gnutls_global_init_skip'") }
        let executable = UplinkProcess.executable.path
        #expect(
            binding?.contains("to \(executable) [0]") == true || binding?.contains("uplink [0]") == true,
            "GnuTLS's constructor calls its own default: \(binding ?? "no binding line")")
    }

    /// One malloc arena from the first allocation on: glibc gives a thread that allocates before main its own
    /// arena (a 64 MiB-aligned heap), and the settings main applies come too late for it.
    @Test func allThreadsShareTheMainArena() throws {
        let directory = UplinkProcess.temporaryDirectory()
        let input = directory.appendingPathComponent("in.log").path
        FileManager.default.createFile(atPath: input, contents: Data("one\n".utf8))
        let config = try UplinkProcess.writeConfig(
            """
            data_dir: \(directory.path)/state
            sources:
              in: { type: file, include: ['\(input)'], read_from: end }
            sinks:
              out: { type: stdout, inputs: [in] }
            """)
        let agent = try DeliveryFaultTests.startAgent(config)
        defer {
            agent.terminate()
            try? UplinkProcess.wait(for: agent, timeout: 20)
        }
        // The pipeline has started once its checkpoint directory exists; the threads are running by then.
        DeliveryFaultTests.waitFor(30) { FileManager.default.fileExists(atPath: directory.path + "/state") }
        usleep(500_000)
        #expect(agent.isRunning)
        let maps = try String(contentsOfFile: "/proc/\(agent.processIdentifier)/maps", encoding: .utf8)
        let arenaHeaps = Self.secondaryArenaHeaps(maps)
        #expect(arenaHeaps.isEmpty, "malloc arenas besides the main one: \(arenaHeaps)")
    }

    /// glibc maps each secondary arena's heap as one anonymous 64 MiB reservation aligned to 64 MiB: a read-write
    /// part in use followed by an inaccessible rest.
    static func secondaryArenaHeaps(_ maps: String) -> [String] {
        let heapSize: UInt64 = 64 << 20
        let rows = maps.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        var heaps: [String] = []
        for (index, row) in rows.enumerated() where row.count == 5 && row[1] == "rw-p" {
            let bounds = row[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
            guard bounds.count == 2, bounds[0] % heapSize == 0 else { continue }
            var end = bounds[1]
            if index + 1 < rows.count, rows[index + 1].count == 5, rows[index + 1][1] == "---p",
                let next = rows[index + 1][0].split(separator: "-").last.flatMap({ UInt64($0, radix: 16) })
            {
                end = next
            }
            if end - bounds[0] == heapSize { heaps.append(String(row[0])) }
        }
        return heaps
    }
}
