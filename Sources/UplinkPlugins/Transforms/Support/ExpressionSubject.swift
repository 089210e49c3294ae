import UplinkCore

/// The events the edge stages (`filter`, `route`, `remap`) evaluate expressions on: what an expression sees of
/// them, and what a dead letter keeps.
public protocol ExpressionSubject: Event {
    /// The fields expressions read: a record's own, or a message's topic and JSON body (``Expression/fields(of:)``).
    var expressionFields: Fields { get }
    /// The bytes a dead letter keeps.
    var deadLetterPayload: [UInt8] { get }
    var deadLetterTopic: String? { get }
}

extension Record: ExpressionSubject {
    public var expressionFields: Fields { fields }

    public var deadLetterPayload: [UInt8] {
        var bytes: [UInt8] = []
        fields.appendJSON(to: &bytes)
        return bytes
    }

    public var deadLetterTopic: String? { nil }
}

extension Message: ExpressionSubject {
    public var expressionFields: Fields { Expression.fields(of: self) }
    public var deadLetterPayload: [UInt8] { body }
    public var deadLetterTopic: String? { topic }
}

/// What an edge stage does with an event when one of its expressions cannot be evaluated for it (a string where a
/// number was needed, a division by zero): `on_error`.
public enum ExpressionErrorPolicy: String, Sendable, CaseIterable {
    /// Drop the event, counted (`processing_error`); the default.
    case drop
    /// Let the event go on as if the failing expression were not there (documented per stage).
    case keep
    /// Write it to the dead-letter file with the reason, counted.
    case deadLetter = "dead_letter"

    static func option(keep: String) -> OptionSpec {
        OptionSpec(
            "on_error", .enumeration(allCases.map(\.rawValue)), default: "drop",
            "an event an expression cannot be evaluated for (a string where a number was needed, a division by zero): drop it, keep it (\(keep)), or dead_letter it with the reason; always counted")
    }
}

/// Counts, logs and dead-letters the events whose expressions failed, as ``ExpressionErrorPolicy`` says.
struct ExpressionFailures {
    let policy: ExpressionErrorPolicy
    private var rejections: Rejections

    init(policy: ExpressionErrorPolicy, deadLetters: DeadLetterSettings, context: ComponentContext) {
        self.policy = policy
        rejections = Rejections(
            context: context, deadLetters: policy == .deadLetter ? deadLetters.file(for: context) : nil,
            dropReason: .processingError)
    }

    /// Handles `event`, whose expression `label` failed with `error`; true when the event goes on (`keep`).
    mutating func handle<E: ExpressionSubject>(_ event: E, label: String, error: any Error) -> Bool {
        let reason = "\(label): \(error)"
        if policy == .keep {
            rejections.count(reason: reason)
            return true
        }
        rejections.reject(event.deadLetterPayload, topic: event.deadLetterTopic, reason: reason, deadLetter: policy == .deadLetter)
        return false
    }

    /// Ends one input chunk: see ``Rejections/settle(_:)``.
    mutating func settle(_ acknowledgements: Acknowledgements) { rejections.settle(acknowledgements) }

    /// Closes the dead-letter file and logs the totals.
    func finish() { rejections.finish() }
}

extension ExpressionErrorPolicy {
    /// Reads `on_error` and the dead-letter options that go with it.
    static func read(from config: ConfigReader) -> (ExpressionErrorPolicy, DeadLetterSettings) {
        let policy: ExpressionErrorPolicy = config.enumeration("on_error", default: .drop)
        let deadLetters = DeadLetterSettings.read(
            from: config, used: policy == .deadLetter, hint: "on_error is not dead_letter")
        return (policy, deadLetters)
    }
}
