/// How a publish ended, when it ended without an error.
///
/// Transient failures never show up here: ``IoTCoreClient/publish(topic:body:)`` retries them, and throws
/// only when it gives up or the task is cancelled (then the data stays with the caller).
public enum PublishOutcome: Sendable, Equatable {
    /// The service acknowledged the message (RetCode 0).
    case delivered(messageID: String)
    /// The message can never be accepted (RetCode 230, 100075, or a topic refused before sending): dead-letter
    /// it with the reason. `retCode` is `nil` for a local refusal.
    case rejected(retCode: Int?, reason: String)
    /// The body is over 131072 bytes (checked before sending; `retCode` `nil`) or the service said so (100076):
    /// split the batch, or dead-letter a single record.
    case tooLarge(retCode: Int?, reason: String)
}
