import Testing

@testable import IoTCore

@Suite("RetCode policy")
struct IoTCoreRetCodePolicyTests {
    typealias Action = RetCodePolicy.Action

    enum Expected: Sendable {
        case succeed, retry, reauthenticate, withoutTimestamp, credentials, reject, tooLarge

        func matches(_ action: Action) -> Bool {
            switch (self, action) {
            case (.succeed, .succeed), (.retry, .retry), (.reauthenticate, .reauthenticate),
                (.withoutTimestamp, .authenticateWithoutTimestamp), (.credentials, .credentialsRefused),
                (.reject, .reject), (.tooLarge, .tooLarge):
                return true
            default:
                return false
            }
        }
    }

    static func answer(_ retCode: Int, token: String? = nil) -> RetCodePolicy.Outcome {
        .response(status: 200, answer: ServerAnswer(retCode: retCode, message: "m", token: token, messageID: "1"))
    }

    // The spec's table, publish side: (RetCode, expected action).
    static let publishRows: [(Int, Expected)] = [
        (0, .succeed),
        (130, .retry),
        (230, .reject),
        (100073, .reauthenticate),
        (100074, .reauthenticate),
        (100075, .reject),
        (100076, .tooLarge),
        (100077, .retry),
        // Credential codes seen on a publish: authenticate again, /auth then reports them properly.
        (171, .reauthenticate),
        (100071, .reauthenticate),
        (100072, .reauthenticate),
        // Not meaningful on a publish, or unknown: keep the data and retry.
        (100070, .retry),
        (999, .retry),
        (-1, .retry),
    ]

    // The spec's table, /auth side.
    static let authRows: [(Int, Expected)] = [
        (130, .retry),
        (171, .credentials),
        (230, .credentials),
        (100070, .withoutTimestamp),
        (100071, .credentials),
        (100072, .credentials),
        (100077, .retry),
        (100073, .retry),
        (424242, .retry),
    ]

    @Test("publish", arguments: publishRows)
    func publish(_ retCode: Int, _ expected: Expected) {
        let action = RetCodePolicy(request: .publish).action(for: Self.answer(retCode))
        #expect(expected.matches(action), "RetCode \(retCode) gave \(action)")
    }

    @Test("auth", arguments: authRows)
    func auth(_ retCode: Int, _ expected: Expected) {
        let action = RetCodePolicy(request: .auth).action(for: Self.answer(retCode))
        #expect(expected.matches(action), "RetCode \(retCode) gave \(action)")
    }

    @Test("auth success needs a usable token")
    func authToken() {
        let policy = RetCodePolicy(request: .auth)
        #expect(policy.action(for: Self.answer(0, token: "a.b.c")) == .succeed)
        #expect(Expected.retry.matches(policy.action(for: Self.answer(0, token: nil))))
        #expect(Expected.retry.matches(policy.action(for: Self.answer(0, token: ""))))
        // A token that would inject a header line is not usable.
        #expect(Expected.retry.matches(policy.action(for: Self.answer(0, token: "a\r\nX-Evil: 1"))))
    }

    @Test("the HTTP status alone decides nothing", arguments: [200, 400, 401, 403, 404, 500, 502, 503])
    func statusAlone(_ status: Int) {
        for request in [RetCodePolicy.Request.auth, .publish] {
            let policy = RetCodePolicy(request: request)
            #expect(Expected.retry.matches(policy.action(for: .response(status: status, answer: nil))))
            #expect(Expected.retry.matches(policy.action(for: .response(status: status, answer: ServerAnswer()))))
        }
        // A RetCode decides even behind an unusual status.
        let rejected = RetCodePolicy(request: .publish).action(
            for: .response(status: status, answer: ServerAnswer(retCode: 230)))
        #expect(Expected.reject.matches(rejected))
    }

    @Test(
        "transport failures are transient",
        arguments: [
            TransportFailure.Kind.connect, .timeout, .connectionReset, .tls, .responseTooLarge, .other,
        ])
    func transport(_ kind: TransportFailure.Kind) {
        let failure = TransportFailure(kind: kind, message: "x", curlCode: 7)
        #expect(Expected.retry.matches(RetCodePolicy(request: .publish).action(for: .transportFailure(failure))))
        #expect(Expected.retry.matches(RetCodePolicy(request: .auth).action(for: .transportFailure(failure))))
    }

    @Test("reasons carry the RetCode and the server's message")
    func reasons() {
        let action = RetCodePolicy(request: .publish).action(
            for: .response(status: 200, answer: ServerAnswer(retCode: 100075, message: "no right")))
        #expect(
            action
                == .reject(
                    retCode: 100075, reason: "RetCode 100075 (ACL failed, no publish right on the topic): no right"))
    }
}

@Suite("Server answers")
struct IoTCoreServerAnswerTests {
    @Test(
        "lenient parsing",
        arguments: [
            (#"{"RetCode":0,"Message":"Success","MessageID":"1234"}"#, 0, "1234"),
            (#"{"RetCode":"130"}"#, 130, nil),
            (#"{"RetCode":100077.0,"MessageID":98765432101234}"#, 100077, "98765432101234"),
            (#"{"retcode":230,"MessageID":null}"#, 230, nil),
            (#"  {"RetCode":true,"Message":5}"#, nil, nil),
            (#"{"RetCode":1e300}"#, nil, nil),
            (#"{"RetCode":"abc","Message":{"nested":[1,2,3]}}"#, nil, nil),
        ] as [(String, Int?, String?)])
    func parse(_ text: String, _ retCode: Int?, _ messageID: String?) throws {
        let answer = try #require(ServerAnswer.parse(Array(text.utf8)))
        #expect(answer.retCode == retCode)
        #expect(answer.messageID == messageID)
    }

    @Test(
        "not a JSON object",
        arguments: [
            "", "<html>502</html>", "[1,2]", "\"x\"", "{\"RetCode\":", "{" + String(repeating: "[", count: 10_000),
            "{\"a\":" + String(repeating: "[", count: 100_000),
        ])
    func notJSON(_ text: String) {
        #expect(ServerAnswer.parse(Array(text.utf8)) == nil)
    }

    @Test("an oversized message is cut and control characters removed")
    func oversized() throws {
        let long = String(repeating: "x", count: 100_000)
        let answer = try #require(ServerAnswer.parse(Array("{\"RetCode\":1,\"Message\":\"\(long)\\n\\u0007\"}".utf8)))
        #expect(answer.message?.count == ServerAnswer.maxTextLength)
        let control = try #require(ServerAnswer.parse(Array(#"{"Message":"a\nb\u0007c"}"#.utf8)))
        #expect(control.message == "a b c")
    }
}
