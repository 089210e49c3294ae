import Logging
import UplinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// The host side of a process transform or sink: feeds batches from the inbox to the plugin within the
/// in-flight window, reads its answers, restarts it with back-off when it crashes or hangs, and sends the
/// unacknowledged batches again to the new process.
///
/// Three tasks per plugin process (a writer, a reader, a watchdog) plus one pump for the whole run. Every
/// way a plugin process can end goes through the reader seeing end of file: the watchdog kills a hung
/// plugin's process group, which closes its stdout.
struct ProcessConsumer<Input: Event>: Sendable {
    let settings: ProcessPluginSettings
    let role: ComponentRole
    /// What to do with a batch the plugin acknowledged: forward its outputs (transform) or resolve its
    /// acknowledgements (sink). `failure` is set when the plugin gave the batch up.
    let complete: @Sendable (InFlightBatches.Batch, _ outputs: [Value], _ failure: String?) async throws -> Void

    private enum Outcome: Sendable {
        case finished
        case failed(ProcessPluginError)
    }

    func run(context: ComponentContext, input: Inbox<Input>) async throws {
        let batches = InFlightBatches(window: settings.maxInFlight, timeout: settings.timeout)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await pump(input, into: batches) }
            group.addTask { try await supervise(batches, context: context) }
            // The pump ends first (its input ended); a failing supervisor ends the run and cancels the pump.
            while try await group.next() != nil {}
        }
    }

    /// Cuts chunks into batches and admits them into the window; the inbox is not read while it is full.
    private func pump(_ input: Inbox<Input>, into batches: InFlightBatches) async {
        let batchSize = settings.batchMaxEvents
        for await chunk in input {
            // Each batch is answered on its own: a share of the chunk's acknowledgements each, all made first.
            var shares = chunk.acknowledgements.shared(among: (chunk.count + batchSize - 1) / batchSize)
            var start = 0
            while start < chunk.count {
                let end = min(start + batchSize, chunk.count)
                let events = chunk.events[start..<end]
                let first = events.first!
                let admitted = await batches.admit(
                    { id in HostMessage.batch(id: id, events: events) }, count: events.count,
                    acknowledgements: shares.removeLast(), origin: Self.origin(of: first),
                    timestamp: Self.timestamp(of: first))
                if !admitted { return }
                start = end
            }
        }
        batches.finishInput()
    }

    /// Starts the plugin, restarts it while the policy allows, and returns when the input ended and every
    /// batch was acknowledged.
    private func supervise(_ batches: InFlightBatches, context: ComponentContext) async throws {
        var policy = RestartPolicy(
            initialBackoff: settings.restartBackoff, maximumBackoff: settings.maxBackoff,
            maxRestarts: settings.maxRestarts)
        var generation = 0
        while true {
            generation += 1
            let progressBefore = batches.completedCount
            let outcome: Outcome
            do {
                let session = try await ProcessPlugin.start(
                    settings, component: context.id, role: role, logger: context.logger)
                if generation == 1 {
                    context.logger.info(
                        "process plugin started",
                        metadata: [
                            "plugin.name": "\(session.hello.name)", "plugin.command": "\(settings.commandLine)",
                            "plugin.pid": "\(session.child.pid)",
                        ])
                } else {
                    context.logger.notice(
                        "process plugin restarted; sending the unacknowledged batches again",
                        metadata: [
                            "plugin.name": "\(session.hello.name)", "plugin.pid": "\(session.child.pid)",
                            "plugin.in_flight": "\(batches.outstandingDescription)",
                        ])
                }
                batches.startGeneration(generation)
                outcome = try await runProcess(session, generation: generation, batches: batches, context: context)
            } catch let error as ProcessPluginError where error.isRestartable {
                outcome = .failed(error)
            }
            guard case .failed(let error) = outcome else { return }
            context.metrics.error()
            switch policy.failed(madeProgress: batches.completedCount > progressBefore) {
            case .giveUp:
                throw ProcessPluginError(
                    .gaveUp, command: settings.commandLine,
                    "\(error.message); gave up after \(policy.consecutiveFailures) failures in a row "
                        + "(max_restarts: \(settings.maxRestarts)), \(batches.outstandingDescription) not acknowledged")
            case .restart(let delay):
                context.logger.warning(
                    "process plugin failed; restarting",
                    metadata: [
                        "error": "\(error)", "plugin.restart_in": "\(delay)",
                        "plugin.in_flight": "\(batches.outstandingDescription)",
                    ])
                try await Task.sleep(for: delay)
            }
        }
    }

    /// Runs one plugin process until it ends. Returns `.finished` after a clean shutdown, `.failed` when it
    /// crashed or hung; throws for what a restart cannot fix (a fatal error, the downstream gone).
    private func runProcess(
        _ session: PluginSession, generation: Int, batches: InFlightBatches, context: ComponentContext
    ) async throws -> Outcome {
        let child = session.child
        let command = settings.commandLine
        let timedOut = Flag()
        let shutdownSent = Flag()
        let settings = self.settings
        // The pipes are closed only after every task of this process has ended (terminate below).
        let outcome: Outcome
        do {
            outcome = try await withThrowingTaskGroup(of: Outcome?.self) { group in
                group.addTask {
                    // Writer: batches in order, then `shutdown` once everything is acknowledged.
                    while let work = await batches.nextWork(generation: generation) {
                        do {
                            switch work {
                            case .send(_, let line):
                                try await AsyncFileDescriptor.write(child.input, line)
                            case .shutdown:
                                try await AsyncFileDescriptor.write(child.input, HostMessage.shutdown)
                                shutdownSent.set()
                                child.closeInput()
                                return nil
                            }
                        } catch is CancellationError {
                            return nil
                        } catch {
                            // Its stdin is closed: it is exiting or broken. Make sure it ends, so the reader sees it.
                            child.signalGroup(SIGKILL)
                            return nil
                        }
                    }
                    return nil
                }
                group.addTask {
                    // Watchdog: a plugin that leaves a batch unanswered, or does not exit after shutdown, for
                    // `timeout` is killed; the reader then reports it.
                    let tick = min(settings.timeout / 4, .milliseconds(100))
                    let clock = ContinuousClock()
                    var exitDeadline: ContinuousClock.Instant?
                    while !Task.isCancelled {
                        try? await Task.sleep(for: tick)
                        if shutdownSent.isSet {
                            exitDeadline = exitDeadline ?? clock.now + settings.timeout
                            if clock.now >= exitDeadline! {
                                child.signalGroup(SIGKILL)
                                return nil
                            }
                        } else if batches.isOverdue() {
                            timedOut.set()
                            child.signalGroup(SIGKILL)
                            return nil
                        }
                    }
                    return nil
                }
                group.addTask {
                    try await read(session, batches: batches, context: context, command: command)
                    // End of file.
                    if shutdownSent.isSet && batches.count == 0 {
                        let status = await child.awaitExit(grace: settings.timeout)
                        if let status, status != .exited(0) {
                            context.logger.warning(
                                "process plugin ended badly after shutdown", metadata: ["plugin.exit": "\(status)"])
                        }
                        return .finished
                    }
                    let status = await child.awaitExit(grace: .milliseconds(500))
                    if timedOut.isSet {
                        return .failed(
                            ProcessPluginError(
                                .timedOut, command: command,
                                "no answer within \(settings.timeout) (timeout); killed"))
                    }
                    return .failed(
                        ProcessPluginError(
                            .crashed, command: command,
                            "ended while \(batches.outstandingDescription) were not acknowledged"
                                + (status.map { " (\($0))" } ?? "")))
                }
                while let result = try await group.next() {
                    if let outcome = result {
                        group.cancelAll()
                        return outcome
                    }
                }
                return Outcome.finished
            }
        } catch {
            await child.terminate(grace: .zero)
            throw error
        }
        await child.terminate(grace: .zero)
        return outcome
    }

    /// Reads the plugin's messages until end of file.
    private func read(
        _ session: PluginSession, batches: InFlightBatches, context: ComponentContext, command: String
    ) async throws {
        var reader = session.reader
        var violations = 0
        let name = session.hello.name
        while true {
            let line: ArraySlice<UInt8>?
            do {
                line = try await reader.next()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // Not readable any more (a line over the limit): treat it as a crash, so it is restarted.
                context.logger.warning("cannot read the plugin's output", metadata: ["error": "\(error)"])
                session.child.signalGroup(SIGKILL)
                return
            }
            guard let line else { return }
            let message: PluginMessage
            do {
                message = try PluginMessage.parse(line)
            } catch {
                ProcessPlugin.reportViolation(error, count: &violations, context: context, command: command)
                continue
            }
            switch message {
            case .events(let id, let values):
                if role == .sink {
                    ProcessPlugin.reportViolation(
                        ProcessProtocolViolation("a sink plugin sent events; sinks only acknowledge"),
                        count: &violations, context: context, command: command)
                } else if !batches.append(values, to: id) {
                    ProcessPlugin.reportViolation(
                        ProcessProtocolViolation(
                            "events for batch \(id.map(String.init) ?? "?"), which is not in flight"),
                        count: &violations, context: context, command: command)
                }
            case .ack(let id, let failure, let values):
                try await finish(
                    id, outputs: values, failure: failure, batches: batches, context: context, count: &violations,
                    command: command)
            case .error(let text, let id, let fatal):
                if fatal { throw ProcessPluginError(.fatal, command: command, "fatal error: \(text)") }
                if let id {
                    try await finish(
                        id, outputs: [], failure: text, batches: batches, context: context, count: &violations,
                        command: command)
                } else {
                    context.metrics.error()
                    context.logger.warning(
                        "process plugin reported an error", metadata: ["plugin.name": "\(name)", "error": "\(text)"])
                }
            case .log(let level, let text):
                ProcessPlugin.relay(level, text, context: context, plugin: name)
            case .hello, .done:
                ProcessPlugin.reportViolation(
                    ProcessProtocolViolation("unexpected \(PluginMessage.quote(line)) after the handshake"),
                    count: &violations, context: context, command: command)
            }
        }
    }

    private func finish(
        _ id: Int64, outputs extra: [Value], failure: String?, batches: InFlightBatches, context: ComponentContext,
        count violations: inout Int, command: String
    ) async throws {
        guard let batch = batches.complete(id) else {
            ProcessPlugin.reportViolation(
                ProcessProtocolViolation("acknowledgement of batch \(id), which is not in flight"), count: &violations,
                context: context, command: command)
            return
        }
        defer { batches.forwarded() }
        if let failure {
            context.metrics.error()
            context.logger.warning(
                "process plugin gave a batch up",
                metadata: ["plugin.batch": "\(id)", "plugin.events": "\(batch.count)", "error": "\(failure)"])
        }
        try await complete(batch, batch.outputs + extra, failure)
    }

    static func origin(of event: Input) -> EventOrigin? {
        switch event {
        case let raw as RawEvent: return raw.origin
        case let record as Record: return record.origin
        default: return nil
        }
    }

    static func timestamp(of event: Input) -> Int64 {
        switch event {
        case let raw as RawEvent: return raw.timestamp
        case let record as Record: return record.timestamp
        default: return currentTimeMillis()
        }
    }
}
