import UplinkCore
import UplinkYAML

/// `route`: sends each record (or message) to every named output whose condition it satisfies, and what matched
/// none to `_unmatched`.
///
/// Downstream components read an output as `inputs: [<id>.<route>]`. An output that no component reads drops
/// its events, counted as `dropped_events_total{reason="unmatched"}` (the topology warns about an unread route;
/// `_unmatched` is usually left unread on purpose). A chunk none of whose events reached a reader resolves its
/// acknowledgements as delivered, so a tail checkpoint moves past it. A condition that cannot be evaluated for
/// an event follows `on_error`: `drop` and `dead_letter` take the event out of every route, `keep` counts that
/// route as not matched and goes on with the others.
public struct RouteTransform<E: ExpressionSubject>: NamedOutputStage {
    public typealias Input = E
    public typealias Output = E

    /// The output of events that matched no route.
    public static var unmatched: String { "_unmatched" }

    public struct Route: Sendable {
        public var name: String
        public var condition: Expression

        public init(name: String, condition: Expression) {
            self.name = name
            self.condition = condition
        }
    }

    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "route", role: .transform,
            summary: "Sends each record or message to every named output whose condition holds (<id>.<route>), the rest to <id>._unmatched.",
            options: [
                OptionSpec(
                    "routes", .map(key: "output name", value: "condition (an expression)"), required: true,
                    "route name: condition (docs/expressions.md), e.g. { alarms: '.level == \"alarm\"', readings: 'exists(.temp)' }; read as inputs: [<id>.<route>]"),
                ExpressionErrorPolicy.option(keep: "that route counts as not matched"),
            ] + DeadLetterSettings.options,
            accepts: [.record, .message], output: .sameAsInput
        ) { context in
            switch context.inputKind {
            case .message: return .transform(try RouteTransform<Message>(config: context.config))
            default: return .transform(try RouteTransform<Record>(config: context.config))
            }
        }
    }

    public let routes: [Route]
    public let onError: ExpressionErrorPolicy
    let deadLetters: DeadLetterSettings

    public var outputNames: [String] { routes.map(\.name) + [Self.unmatched] }

    public init(routes: [Route], onError: ExpressionErrorPolicy = .drop) {
        self.routes = routes
        self.onError = onError
        deadLetters = DeadLetterSettings()
    }

    init(config: ConfigReader) throws {
        (onError, deadLetters) = ExpressionErrorPolicy.read(from: config)
        guard let node = config.value("routes") else { throw PluginBuildError.reported }
        guard let pairs = node.mapping, !pairs.isEmpty else {
            config.error("option 'routes' must be a mapping of route name: condition", at: "routes")
            throw PluginBuildError.reported
        }
        var routes: [Route] = []
        var failed = false
        for pair in pairs {
            guard let name = pair.key.scalar, Self.isValidName(name) else {
                config.diagnostics.error(
                    "a route name uses letters, digits, '_' and '-' and does not start with '_' (reserved for _unmatched)",
                    file: config.file, at: pair.key.mark)
                failed = true
                continue
            }
            if routes.contains(where: { $0.name == name }) {
                config.diagnostics.error("route '\(name)' is written twice", file: config.file, at: pair.key.mark)
                failed = true
                continue
            }
            guard let condition = config.expression(in: pair.value, label: "routes.\(name)", condition: true) else {
                failed = true
                continue
            }
            routes.append(Route(name: name, condition: condition))
        }
        if failed { throw PluginBuildError.reported }
        self.routes = routes
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first != UInt8(ascii: "_") else { return false }
        return name.utf8.allSatisfy {
            $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A)
        }
    }

    public func run(context: ComponentContext, input: Inbox<E>, output: Outbox<E>) async throws {
        var failures = ExpressionFailures(policy: onError, deadLetters: deadLetters, context: context)
        defer { failures.finish() }
        let names = outputNames
        var buckets = [[E]](repeating: [], count: names.count)
        // The routes one event matched, decided before it joins any of them (an error may still reject it).
        var matches: [Int] = []
        matches.reserveCapacity(routes.count)
        for await chunk in input {
            for event in chunk.events {
                let fields = event.expressionFields
                matches.removeAll(keepingCapacity: true)
                var rejected = false
                for (index, route) in routes.enumerated() {
                    do {
                        if try route.condition.test(fields) { matches.append(index) }
                    } catch {
                        if !failures.handle(event, label: "routes.\(route.name)", error: error) {
                            rejected = true
                            break
                        }
                    }
                }
                if rejected { continue }
                if matches.isEmpty {
                    buckets[names.count - 1].append(event)
                } else {
                    for index in matches { buckets[index].append(event) }
                }
            }
            failures.settle(chunk.acknowledgements)
            // Each output answers on its own: with events for several, each gets a share of the chunk's
            // acknowledgements, all made before the first is sent.
            let targets = names.indices.filter { !buckets[$0].isEmpty }
            var shares = chunk.acknowledgements.shared(among: targets.count)
            for index in targets {
                let events = buckets[index]
                buckets[index] = []
                let acknowledgements = shares.removeLast()
                if try await !output.send(EventChunk(events, acknowledgements: acknowledgements), to: names[index]) {
                    // Nothing reads this output: the events are dropped by design, which is their final answer.
                    context.metrics.dropped(events.count, reason: .unmatched)
                    acknowledgements.resolve(.delivered)
                }
            }
            // Every event was rejected (and settled above) or the chunk was empty.
            if targets.isEmpty { chunk.acknowledgements.resolve(.delivered) }
        }
    }
}
