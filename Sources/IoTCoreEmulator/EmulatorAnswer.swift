import Logging

/// An IoT-Core answer: HTTP 200 with `{"RetCode":N,"Message":"…", …}`. Clients decide by RetCode only.
struct EmulatorAnswer: Sendable {
    var retCode: RetCode
    /// Fields after `RetCode` and `Message` (`Token`, `MessageID`).
    var extraFields: [(String, JSONValue)] = []
    /// Metadata for the answer's log line (never a secret or a token).
    var logMetadata: Logger.Metadata = [:]

    init(_ retCode: RetCode, _ extraFields: [(String, JSONValue)] = [], logMetadata: Logger.Metadata = [:]) {
        self.retCode = retCode
        self.extraFields = extraFields
        self.logMetadata = logMetadata
    }

    var json: String {
        JSONValue.object(
            [("RetCode", .int(self.retCode.value)), ("Message", .string(self.retCode.message))]
                + self.extraFields)
    }
}
