import FoundationEssentials
@testable import IoTCore

/// IoT-Core's answers to /auth and /topic as the client reads them, and what the RetCode policy makes of
/// them.
///
/// Input: the HTTP status (one byte, mapped onto the codes the spec names), then the body.
///
/// Properties: no crash; text taken from the answer (Message, MessageID) is at most 256 characters and holds no
/// control characters, so it is safe in a log line; a usable token is visible ASCII; /auth succeeds only
/// with RetCode 0 and a usable token, a publish only with RetCode 0; a missing or unreadable RetCode is always
/// retried; reasons are bounded.
enum ServerAnswerFuzz {
    static let statuses = [200, 400, 401, 403, 413, 429, 500, 502, 503]

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var input = FuzzInput(data)
        let status = input.pick(statuses)
        let body = Array(input.rest)
        let answer = ServerAnswer.parse(body)
        if let answer {
            for text in [answer.message, answer.messageID].compactMap({ $0 }) {
                require(text.unicodeScalars.count <= ServerAnswer.maxTextLength, "answer text over the limit")
                require(
                    !text.unicodeScalars.contains { $0.properties.generalCategory == .control },
                    "answer text with a control character: \(text.debugDescription)")
            }
            if let token = answer.usableToken {
                require(token.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "a usable token that is not visible ASCII")
                // The client reads the token's JWT claims for its expiry, then schedules the renewal from it.
                let received = Date(timeIntervalSince1970: 1_750_000_000)
                let info = TokenInfo(token: token, receivedAt: received)
                require(info.expiresAt.timeIntervalSince1970.isFinite, "a token's expiry is not finite")
                TokenCacheFuzz.use(info, at: received)
            }
            // Which of two keys that differ only in case wins must not change from one parse to the next.
            for _ in 0..<4 { require(ServerAnswer.parse(body) == answer, "the same body parsed twice differs") }
        }

        for request in [RetCodePolicy.Request.auth, .publish] {
            let action = RetCodePolicy(request: request).action(for: .response(status: status, answer: answer))
            let retCode = answer?.retCode
            switch action {
            case .succeed:
                require(retCode == 0, "success without RetCode 0")
                if request == .auth { require(answer?.usableToken != nil, "/auth succeeded without a usable token") }
            case .retry(let code, let reason, _):
                require(reason.utf8.count <= 1_200, "a reason of \(reason.utf8.count) bytes")
                require(code == retCode, "retry names another RetCode")
            case .reauthenticate(let code, let reason), .credentialsRefused(let code, let reason),
                .reject(let code, let reason), .tooLarge(let code, let reason):
                require(code == retCode && code != 0, "a refusal with RetCode \(code), answer \(String(describing: retCode))")
                require(reason.utf8.count <= 1_200, "a reason of \(reason.utf8.count) bytes")
            case .authenticateWithoutTimestamp(let reason):
                require(request == .auth && retCode == 100070, "authenticate without timestamp for \(String(describing: retCode))")
                require(reason.utf8.count <= 1_200, "a reason of \(reason.utf8.count) bytes")
            }
            if retCode == nil {
                guard case .retry = action else {
                    require(false, "an answer without RetCode was not retried")
                    return
                }
            }
        }
    }
}
