import ArgumentParser
import UnixSignals
import UplinkCore
import UplinkOperations

#if canImport(Glibc)
import Glibc
#endif

struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A live table of the pipeline's components: rates, totals, drops, errors, buffers.",
        discussion: """
            Polls GET /api/components of a running `uplink run` whose configuration has `api:`, every second. \
            On a terminal the table is redrawn in place (any ssh terminal will do); q or Ctrl-C quits and \
            restores the terminal. When standard output is not a terminal, a plain table is printed each time.
            """
    )

    @Option(help: "The API address of the running pipeline (its `api.address`).")
    var api: String = APIConfig.defaultAddress

    @Option(help: "Seconds between refreshes.")
    var interval: Double = 1

    @Option(help: "Stop after this many refreshes (default: until q or Ctrl-C).")
    var count: Int?

    func validate() throws {
        if !(interval >= 0.1) { throw ValidationError("--interval must be at least 0.1") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        let client: APIClient
        do {
            client = try APIClient(address: api)
        } catch {
            throw ValidationError("\(error)")
        }
        let screen = TopScreen(address: "\(client.host):\(client.port)")
        let terminal = RawTerminal()
        defer { terminal?.restore() }
        let interval = Duration.milliseconds(Int64(self.interval * 1000))
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let count = self.count
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals { return }
            }
            group.addTask {
                if let terminal {
                    try await Self.live(client: client, screen: screen, terminal: terminal, interval: interval, count: count)
                } else {
                    try await Self.plain(client: client, screen: screen, interval: interval, count: count)
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    /// Redraws in place; keys are polled every 50 ms between refreshes.
    static func live(
        client: APIClient, screen: TopScreen, terminal: RawTerminal, interval: Duration, count: Int?
    ) async throws {
        var previous: (ComponentsSnapshot, ContinuousClock.Instant)?
        var refreshes = 0
        let hint = "q or Ctrl-C to quit"
        while true {
            let now = ContinuousClock.now
            do {
                let snapshot = try await fetch(client)
                let elapsed = previous.map { now - $0.1 } ?? .zero
                terminal.draw(
                    screen.lines(
                        current: snapshot, previous: previous?.0, elapsed: elapsed, width: terminal.size.columns,
                        hint: hint))
                previous = (snapshot, now)
            } catch {
                terminal.draw(["uplink top — \(screen.address)", "", "\(error)", "retrying every second…", "", hint])
                previous = nil
            }
            refreshes += 1
            if let count, refreshes >= count { return }
            let deadline = now + interval
            while ContinuousClock.now < deadline {
                let keys = terminal.pendingKeys()
                // q, Q, Ctrl-C (in case the terminal delivers it as a byte), Ctrl-D.
                if keys.contains(where: { $0 == UInt8(ascii: "q") || $0 == UInt8(ascii: "Q") || $0 == 3 || $0 == 4 }) {
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Prints a plain table per refresh, for pipes and logs.
    static func plain(client: APIClient, screen: TopScreen, interval: Duration, count: Int?) async throws {
        var previous: (ComponentsSnapshot, ContinuousClock.Instant)?
        var refreshes = 0
        while true {
            let now = ContinuousClock.now
            let snapshot: ComponentsSnapshot
            do {
                snapshot = try await fetch(client)
            } catch {
                printError("uplink top: \(error)")
                throw ExitCode(1)
            }
            let elapsed = previous.map { now - $0.1 } ?? .zero
            let lines = screen.lines(current: snapshot, previous: previous?.0, elapsed: elapsed, width: 1000)
            printOut((refreshes > 0 ? "\n" : "") + lines.joined(separator: "\n") + "\n")
            previous = (snapshot, now)
            refreshes += 1
            if let count, refreshes >= count { return }
            try await Task.sleep(until: now + interval)
        }
    }

    static func fetch(_ client: APIClient) async throws -> ComponentsSnapshot {
        let response = try await client.get("/api/components")
        guard response.status == 200 else {
            throw APIClientError(APIMessage.text(response.body, status: response.status))
        }
        return try ComponentsSnapshot.parse(response.body)
    }
}
