import Logging
import Synchronization
import UplinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// `type: process` as a source: a long-running child whose `events` messages become events (see
/// ``ProcessProtocol``).
///
/// An `events` message with an `id` is acknowledged back to the plugin (`{"type":"ack","id":N,"status":...}`)
/// once every sink has answered for those events, so a plugin can checkpoint what it read. A plugin that
/// exits with status 0 (or says `done`) has finished, and the pipeline drains as at the end of stdin; one that
/// crashes is restarted with back-off.
public struct ProcessSource<Output: Event>: SourceStage, ProcessPluginStage {
    public let settings: ProcessPluginSettings
    public var role: ComponentRole { .source }

    public init(settings: ProcessPluginSettings) {
        self.settings = settings
    }

    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "process", role: .source,
            summary: "Runs a program in any language whose newline-delimited JSON on stdout becomes events.",
            options: ProcessPluginSettings.options(for: .source), output: .fromOption("output_kind", default: .record),
            origin: ProcessPluginSettings.origin
        ) { context in
            let settings = ProcessPluginSettings.read(context.config, role: .source, inputKind: nil)
            func make<O: Event>(_: O.Type) -> BuiltStage { .source(ProcessSource<O>(settings: settings)) }
            let output: any Event.Type = (settings.outputKind ?? EventKind.record).eventType
            return make(output)
        }
    }

    private enum Outcome {
        case finished
        case failed(ProcessPluginError)
    }

    public func run(context: ComponentContext, output: Outbox<Output>) async throws {
        var policy = RestartPolicy(
            initialBackoff: settings.restartBackoff, maximumBackoff: settings.maxBackoff,
            maxRestarts: settings.maxRestarts)
        var generation = 0
        while true {
            generation += 1
            let received = Counter()
            let outcome: Outcome
            do {
                let session = try await ProcessPlugin.start(
                    settings, component: context.id, role: .source, logger: context.logger)
                context.logger.info(
                    generation == 1 ? "process plugin started" : "process plugin restarted",
                    metadata: [
                        "plugin.name": "\(session.hello.name)", "plugin.command": "\(settings.commandLine)",
                        "plugin.pid": "\(session.child.pid)",
                    ])
                outcome = try await runProcess(session, context: context, output: output, received: received)
            } catch let error as ProcessPluginError where error.isRestartable {
                outcome = .failed(error)
            }
            guard case .failed(let error) = outcome else { return }
            context.metrics.error()
            switch policy.failed(madeProgress: received.value > 0) {
            case .giveUp:
                throw ProcessPluginError(
                    .gaveUp, command: settings.commandLine,
                    "\(error.message); gave up after \(policy.consecutiveFailures) failures in a row (max_restarts: \(settings.maxRestarts))"
                )
            case .restart(let delay):
                context.logger.warning(
                    "process plugin failed; restarting",
                    metadata: ["error": "\(error)", "plugin.restart_in": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }

    private func runProcess(
        _ session: PluginSession, context: ComponentContext, output: Outbox<Output>, received: Counter
    ) async throws -> Outcome {
        let child = session.child
        let settings = self.settings
        let acks = SourceAcks()
        defer { acks.close() }
        // The pipes are closed only after both tasks have ended (terminate below).
        let outcome: Outcome
        do {
            outcome = try await withThrowingTaskGroup(of: Outcome?.self) { group in
                group.addTask {
                    // Writer: acknowledgements back to the plugin, as sinks answer.
                    while let lines = await acks.next() {
                        do {
                            try await AsyncFileDescriptor.write(child.input, lines)
                        } catch {
                            return nil
                        }
                    }
                    return nil
                }
                group.addTask {
                    // After `done`, stdin is closed below, which a plugin waiting for its end sees.
                    if try await read(session, context: context, output: output, acks: acks, received: received) {
                        return .finished
                    }
                    let status = await child.awaitExit(grace: settings.timeout)
                    if status == .exited(0) { return .finished }
                    return .failed(
                        ProcessPluginError(
                            .crashed, command: settings.commandLine, "ended" + (status.map { " (\($0))" } ?? "")))
                }
                while let result = try await group.next() {
                    if let outcome = result {
                        group.cancelAll()
                        return outcome
                    }
                }
                return .finished
            }
        } catch {
            // Stopped (the pipeline shuts down) or failed: ask it to stop, give it `timeout`, then kill the group.
            acks.close()
            child.writeWithoutWaiting(HostMessage.shutdown)
            // Sources have no data at stake in their stop: SIGTERM after a second, for plugins that never read.
            await child.terminate(grace: settings.timeout, termAfter: .seconds(1))
            throw error
        }
        await child.terminate(grace: settings.timeout, termAfter: .seconds(1))
        return outcome
    }

    /// Reads events until end of file; true when the plugin said `done`.
    private func read(
        _ session: PluginSession, context: ComponentContext, output: Outbox<Output>, acks: SourceAcks,
        received: Counter
    ) async throws -> Bool {
        var reader = session.reader
        var violations = 0
        let command = settings.commandLine
        let origin = EventOrigin(sourceID: context.id, location: command)
        while let line = try await reader.next() {
            let message: PluginMessage
            do {
                message = try PluginMessage.parse(line)
            } catch {
                ProcessPlugin.reportViolation(error, count: &violations, context: context, command: command)
                continue
            }
            switch message {
            case .events(let id, let values):
                let now = currentTimeMillis()
                var events: [Output] = []
                events.reserveCapacity(values.count)
                for value in values {
                    do {
                        events.append(try EventCodec.decode(value, as: Output.self, origin: origin, timestamp: now))
                    } catch {
                        context.metrics.error()
                        context.metrics.dropped(1, reason: .parseError)
                        ProcessPlugin.reportViolation(
                            ProcessProtocolViolation("not a valid \(Output.kind.rawValue) event: \(error)"),
                            count: &violations, context: context, command: command)
                    }
                }
                received.add(events.count)
                var acknowledgements = Acknowledgements.none
                if let id {
                    acknowledgements = Acknowledgements([
                        Acknowledgement { status in acks.append(id: id, status: status) }
                    ])
                }
                try await output.send(EventChunk(events, acknowledgements: acknowledgements))
            case .done:
                return true
            case .log(let level, let text):
                ProcessPlugin.relay(level, text, context: context, plugin: session.hello.name)
            case .error(let text, _, let fatal):
                if fatal { throw ProcessPluginError(.fatal, command: command, "fatal error: \(text)") }
                context.metrics.error()
                context.logger.warning(
                    "process plugin reported an error",
                    metadata: ["plugin.name": "\(session.hello.name)", "error": "\(text)"])
            case .ack, .hello:
                ProcessPlugin.reportViolation(
                    ProcessProtocolViolation("unexpected \(PluginMessage.quote(line)) from a source"),
                    count: &violations,
                    context: context, command: command)
            }
        }
        return false
    }
}

/// Acknowledgements waiting to be written back to a source plugin. Appended from whichever thread releases
/// the last reference to a chunk; drained by the writer task.
final class SourceAcks: Sendable {
    private struct State {
        var lines: [UInt8] = []
        var closed = false
    }

    private let state = Mutex(State())
    private let changes = ChangeSignal()

    func append(id: Int64, status: DeliveryStatus) {
        let appended = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.lines += HostMessage.ack(id: id, status: status)
            return true
        }
        if appended { changes.signal() }
    }

    /// Stops accepting acknowledgements (the plugin process is gone) and wakes the writer.
    func close() {
        state.withLock { $0.closed = true }
        changes.signal()
    }

    /// The acknowledgements gathered since the last call, as lines; nil once closed or cancelled.
    func next() async -> [UInt8]? {
        while true {
            let seen = changes.version
            let lines = state.withLock { state -> [UInt8]?? in
                if state.closed { return .some(nil) }
                guard !state.lines.isEmpty else { return nil }
                defer { state.lines.removeAll() }
                return .some(state.lines)
            }
            if let lines { return lines }
            if Task.isCancelled { return nil }
            await changes.wait(since: seen)
        }
    }
}

/// A count updated by one task and read by another.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)

    func add(_ value: Int) { count.add(value, ordering: .relaxed) }

    var value: Int { count.load(ordering: .relaxed) }
}
