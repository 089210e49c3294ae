import IoTCore
import Logging
import UplinkCore

/// `iotcore_http`: publishes messages (and batches) to UCloud IoT-Core over HTTPS, `POST /topic/${topic}`.
///
/// The IoT-Core client owns authentication, the token, retries with back-off and the RetCode policy; this sink
/// decides what to do with the final answers: acknowledge on success, split a batch the server found too
/// large and send the halves, dead-letter what can never succeed (with its reason and RetCode), and
/// acknowledge only after one of those. Up to the client's adaptive limit of messages are on the wire; those on
/// an ordered lane (shadow updates always, every topic with `ordering: per_topic`) go one after the other
/// (``DeliveryOrdering``), and wait for their turn without holding a place on the wire (``DeliverySlots``).
public struct IoTCoreSink<Input: Event>: SinkStage {
    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "iotcore_http", role: .sink,
            summary: "Publishes to UCloud IoT-Core over HTTPS (auth with HMAC-SHA256, 7-day token, RetCode handling, 128 KB cap); records are sent as JSON.",
            options: IoTCoreSinkSettings.options, accepts: [.message, .record], output: .none,
            // Its input is usually batches of up to 128 KB: 16 of them wait at most (2 MiB), not 4096 (512 MiB).
            defaultBufferEvents: IoTCoreSinkSettings.defaultBufferEvents, keepsState: true
        ) { context in
            guard let settings = IoTCoreSinkSettings.read(context.config, checksPaths: context.checksPaths) else {
                return .sink(IoTCoreSink<Message>(settings: nil))
            }
            // Thing-model and shadow transforms use the sink's device instead of repeating it.
            context.shared["iotcore.product_sn"] = settings.credentials.productSN
            context.shared["iotcore.device_sn"] = settings.credentials.deviceSN
            func make<E: Event>(_: E.Type) -> BuiltStage { .sink(IoTCoreSink<E>(settings: settings)) }
            return make(context.inputKind!.eventType)
        }
    }

    let settings: IoTCoreSinkSettings?

    init(settings: IoTCoreSinkSettings?) {
        self.settings = settings
    }

    public func run(context: ComponentContext, input: Inbox<Input>) async throws {
        guard let settings else { throw PluginBuildError("the sink was not configured") }
        let stateDirectory = try context.stateDirectory()
        let deadLetters = DeadLetterFile(
            path: settings.deadLetterPath ?? stateDirectory + "/dead-letters.jsonl", maxBytes: settings.deadLetterMaxBytes)

        try await settings.withClient(stateDirectory: stateDirectory, logger: context.logger) { client in
            try await publishAll(
                client: client, settings: settings, deadLetters: deadLetters, context: context, input: input)
        }
    }

    private func publishAll(
        client: IoTCoreClient, settings: IoTCoreSinkSettings, deadLetters: DeadLetterFile, context: ComponentContext,
        input: Inbox<Input>
    ) async throws {
        context.metrics.addReporter { client.componentReport() }
        let delivery = Delivery(
            client: client, deadLetters: deadLetters, defaultTopic: settings.topic, context: context)
        let lanes = DeliveryLanes()
        // A place on the wire is taken only by a message that can go now; an ordered message waiting for the
        // one before it on its lane holds a waiting place instead, so one slow lane cannot take the places of
        // the topics sharing the sink. Both are bounded by the adaptive limit, so at most twice the limit of
        // messages are read ahead of their answers.
        let sending = DeliverySlots { client.concurrencyLimit }
        let waiting = DeliverySlots { client.concurrencyLimit }
        // The reader and the deliveries run on the client's libcurl thread: an answer resumes its delivery, which
        // acknowledges, lets the reader in and hands the next request over, all on the thread that read the
        // answer, instead of waking a pool thread that then wakes the libcurl thread again, twice per request.
        // Nothing here blocks but a dead letter's write (rare, and short).
        try await withTaskExecutorPreference(client.taskExecutor) {
            try await withThrowingDiscardingTaskGroup { group in
                /// Runs `work` as a child; a failure stops the sink (the reader and every waiter) and is rethrown
                /// by the group.
                func spawn(_ work: @escaping @Sendable () async throws -> Void) {
                    group.addTask {
                        do {
                            try await work()
                        } catch {
                            sending.abort()
                            waiting.abort()
                            throw error
                        }
                    }
                }
                do {
                    for await chunk in input {
                        // Each message is a request of its own that succeeds or fails on its own: with several,
                        // each gets a share of the chunk's acknowledgements (made before the first is sent), so the
                        // chunk counts as delivered only when all of them were.
                        var shares = chunk.acknowledgements.shared(among: chunk.events.count)
                        for event in chunk.events {
                            let message = Self.message(for: event)
                            let acknowledgements = shares.removeLast()
                            guard let lane = settings.ordering.lane(for: message.topic ?? settings.topic) else {
                                try await sending.take()
                                spawn {
                                    defer { sending.release() }
                                    try await delivery.deliver(message, acknowledgements: acknowledgements)
                                }
                                continue
                            }
                            let (previous, mine) = lanes.enqueue(on: lane)
                            guard let previous else {
                                // The lane is free: the message goes now, like an unordered one.
                                try await sending.take()
                                spawn {
                                    var delivered = false
                                    defer {
                                        sending.release()
                                        lanes.finish(mine, on: lane, delivered: delivered)
                                    }
                                    try await delivery.deliver(message, acknowledgements: acknowledgements)
                                    delivered = true
                                }
                                continue
                            }
                            try await waiting.take()
                            spawn {
                                var delivered = false
                                defer { lanes.finish(mine, on: lane, delivered: delivered) }
                                var isWaiting = true
                                defer { if isWaiting { waiting.release() } }
                                // The message before failed (the sink is stopping): this one must not overtake it.
                                guard await previous.wait() else { throw CancellationError() }
                                // The waiting place is given back only once a sending place is taken, so the
                                // messages read ahead stay bounded.
                                try await sending.take()
                                defer { sending.release() }
                                waiting.release()
                                isWaiting = false
                                try await delivery.deliver(message, acknowledgements: acknowledgements)
                                delivered = true
                            }
                        }
                    }
                } catch is DeliverySlots.Aborted {
                    // A delivery failed: the group rethrows its error.
                }
            }
        }
        let statistics = client.statistics
        context.logger.info(
            "sink finished",
            metadata: [
                "iotcore.requests": "\(statistics.requests)", "iotcore.delivered": "\(statistics.messagesDelivered)",
                "iotcore.retries": "\(statistics.retries)", "iotcore.auth_renewals": "\(statistics.authRenewals)",
            ])
    }

    /// Records become one JSON message on the default topic; messages keep their own topic.
    static func message(for event: Input) -> Message {
        if let message = event as? Message { return message }
        var body: [UInt8] = []
        event.appendText(to: &body)
        return Message(topic: nil, body: body)
    }
}

/// Delivers one message to its final answer.
struct Delivery: Sendable {
    let client: IoTCoreClient
    let deadLetters: DeadLetterFile
    let defaultTopic: String
    let context: ComponentContext

    func deliver(_ message: Message, acknowledgements: Acknowledgements) async throws {
        let topic = message.topic ?? defaultTopic
        let outcome: PublishOutcome
        do {
            outcome = try await client.publish(topic: topic, body: message.body)
        } catch let error as IoTCoreError where error.code == .retriesExhausted {
            // Only when the operator set retry.max_attempts: never drop silently.
            try await deadLetter(message, topic: topic, reason: "gave up after retry.max_attempts: \(error.message)", retCode: error.retCode, acknowledgements: acknowledgements)
            return
        }
        switch outcome {
        case .delivered:
            context.metrics.sent(events: message.recordCount, bytes: message.body.count)
            acknowledgements.resolve(.delivered)
        case .rejected(let retCode, let reason):
            try await deadLetter(message, topic: topic, reason: reason, retCode: retCode, acknowledgements: acknowledgements)
        case .tooLarge(let retCode, let reason):
            if let (first, second) = message.splitInHalves() {
                context.logger.debug(
                    "batch too large; sending it in halves",
                    metadata: ["iotcore.topic": "\(topic)", "batch.bytes": "\(message.body.count)", "batch.parts": "\(message.parts.count)"])
                // Two requests: a share each, both made before the first is sent.
                let halves = acknowledgements.shared(among: 2)
                try await deliver(first, acknowledgements: halves[0])
                try await deliver(second, acknowledgements: halves[1])
            } else {
                try await deadLetter(message, topic: topic, reason: reason, retCode: retCode, acknowledgements: acknowledgements)
            }
        }
    }

    /// Writes here (the libcurl thread: a write to the page cache) and waits for the fsync on the file's own
    /// thread, which the other deliveries rejected meanwhile share: a slow disk does not hold up this sink's other
    /// requests, and a storm of refusals costs one fsync per batch of them, not one each.
    private func deadLetter(_ message: Message, topic: String, reason: String, retCode: Int?, acknowledgements: Acknowledgements) async throws {
        let ticket = try deadLetters.append(component: context.id, topic: topic, reason: reason, retCode: retCode, payload: message.body)
        try await deadLetters.awaitDurable(ticket)
        context.metrics.dropped(message.recordCount, reason: .deadLetter)
        context.metrics.error()
        context.logger.warning(
            "message dead-lettered",
            metadata: [
                "iotcore.topic": "\(topic)", "iotcore.retcode": "\(retCode.map(String.init) ?? "none")",
                "reason": "\(reason)", "dead_letter.path": "\(deadLetters.path)",
            ])
        // A dead letter is a final answer: the source may move on.
        acknowledgements.resolve(.delivered)
    }
}
