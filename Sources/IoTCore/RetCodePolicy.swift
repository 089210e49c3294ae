/// The spec's RetCode table as a pure function: an attempt's outcome in, what to do next out.
///
/// The decision rests on `RetCode` in the JSON answer, never on the HTTP status alone. An answer that is
/// not a JSON object or has no integer `RetCode` (a proxy's error page, a truncated body, a 5xx) is transient,
/// as is every transport failure. An unknown non-zero `RetCode` is transient too: retrying keeps the data,
/// and ``RetryPolicy/maxAttempts`` bounds it for callers that want a bound.
struct RetCodePolicy: Sendable, Hashable {
    /// Which request the outcome belongs to; the same code means different things on `/auth` and `/topic`.
    enum Request: String, Sendable, Hashable {
        case auth
        case publish
    }

    /// One attempt's outcome.
    enum Outcome: Sendable, Hashable {
        /// No complete response.
        case transportFailure(TransportFailure)
        /// A response; `answer` is `nil` when the body is not a JSON object.
        case response(status: Int, answer: ServerAnswer?)
    }

    /// What the caller does next.
    enum Action: Sendable, Hashable {
        /// RetCode 0: ack the data, or take the token.
        case succeed
        /// Back off and send the same request again; `cause` is one of ``IoTCoreError/Code/transport``,
        /// ``IoTCoreError/Code/malformedResponse`` or ``IoTCoreError/Code/serviceUnavailable``.
        case retry(retCode: Int?, reason: String, cause: IoTCoreError.Code)
        /// The token was refused (100073, 100074): authenticate again, then resend the same data.
        case reauthenticate(retCode: Int, reason: String)
        /// `/auth` refused the Timestamp (100070): authenticate again without it.
        case authenticateWithoutTimestamp(reason: String)
        /// `/auth` refused the credentials (171, 100071, 100072, 230): log once, back off long, keep the data.
        case credentialsRefused(retCode: Int, reason: String)
        /// The data can never be accepted (230, 100075): dead-letter it with the reason.
        case reject(retCode: Int, reason: String)
        /// The body is over the limit (100076): split it or dead-letter it.
        case tooLarge(retCode: Int, reason: String)
    }

    var request: Request

    func action(for outcome: Outcome) -> Action {
        switch outcome {
        case .transportFailure(let failure):
            let cause: IoTCoreError.Code =
                switch failure.kind {
                case .connect: .connect
                case .timeout: .timeout
                default: .transport
                }
            return .retry(retCode: nil, reason: "transport failure: \(failure)", cause: cause)
        case .response(let status, let answer):
            guard let answer, let retCode = answer.retCode else {
                let what = answer == nil ? "an answer that is not a JSON object" : "an answer without RetCode"
                return .retry(retCode: nil, reason: "HTTP \(status) with \(what)", cause: .malformedResponse)
            }
            let reason = Self.reason(retCode, answer.message)
            switch request {
            case .auth: return authAction(retCode, answer, reason)
            case .publish: return publishAction(retCode, reason)
            }
        }
    }

    private func authAction(_ retCode: Int, _ answer: ServerAnswer, _ reason: String) -> Action {
        switch retCode {
        case 0:
            guard answer.usableToken != nil else {
                return .retry(retCode: 0, reason: "the /auth answer has no usable Token", cause: .malformedResponse)
            }
            return .succeed
        // 230 on /auth can only come from the configured ProductSN/DeviceSN: the body is ours otherwise.
        case 171, 100071, 100072, 230:
            return .credentialsRefused(retCode: retCode, reason: reason)
        case 100070:
            return .authenticateWithoutTimestamp(reason: reason)
        default:
            return .retry(retCode: retCode, reason: reason, cause: .serviceUnavailable)
        }
    }

    private func publishAction(_ retCode: Int, _ reason: String) -> Action {
        switch retCode {
        case 0:
            return .succeed
        case 230, 100075:
            return .reject(retCode: retCode, reason: reason)
        case 100076:
            return .tooLarge(retCode: retCode, reason: reason)
        // The credential codes are documented for /auth only; seen on a publish they still mean the token no
        // longer stands, and the next /auth reports the real problem (with its long back-off).
        case 100073, 100074, 171, 100071, 100072:
            return .reauthenticate(retCode: retCode, reason: reason)
        default:
            return .retry(retCode: retCode, reason: reason, cause: .serviceUnavailable)
        }
    }

    /// The documented meaning of `retCode`, for reasons and log lines.
    static func meaning(of retCode: Int) -> String {
        switch retCode {
        case 0: "success"
        case 130: "service temporarily unavailable"
        case 171: "signature error"
        case 230: "parameter error"
        case 100070: "timestamp error"
        case 100071: "product or device does not exist"
        case 100072: "device disabled"
        case 100073: "token check error"
        case 100074: "token expired"
        case 100075: "ACL failed, no publish right on the topic"
        case 100076: "body over the limit"
        case 100077: "publish failed"
        default: "unknown RetCode"
        }
    }

    static func reason(_ retCode: Int, _ message: String?) -> String {
        var text = "RetCode \(retCode) (\(meaning(of: retCode)))"
        if let message, !message.isEmpty { text += ": \(message)" }
        return text
    }
}
