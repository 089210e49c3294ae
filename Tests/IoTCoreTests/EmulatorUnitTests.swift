import Testing

@testable import IoTCoreEmulator

@Suite("Emulator building blocks")
struct EmulatorUnitTests {
    @Test("HMAC-SHA256 matches the spec's test vector")
    func hmacVector() {
        let body = #"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001"}"#
        let mac = LibCrypto.hmacSHA256(key: Array("s3cr3tKey0000000".utf8), message: Array(body.utf8))
        #expect(LibCrypto.hex(mac) == "00a241845eef3cc51dfa41e30059e34b70d85d9d0fe769942e8b7d71a0dd77ae")
    }

    @Test(
        "MQTT topic filters",
        arguments: [
            ("#", "/a/b", true),
            ("#", "/$system/p/d/tmodel/property/post", true),
            ("/p/d/#", "/p/d/upload", true),
            ("/p/d/#", "/p/d", true),
            ("/p/d/#", "/p/e/upload", false),
            ("/p/+/upload", "/p/d/upload", true),
            ("/p/+/upload", "/p/d/x/upload", false),
            ("/p/+", "/p/d/upload", false),
            ("/$system/p/d/#", "/$system/p/d/shadow/upstream", true),
            ("/$system/p/d/#", "/p/d/upload", false),
            ("/p/d/upload", "/p/d/upload", true),
            ("/p/d/upload", "/p/d/upload/x", false),
            ("+/+/+/+", "/p/d/upload", true),
        ])
    func topicFilters(filter: String, topic: String, matches: Bool) {
        #expect(TopicFilter.isValid(filter))
        #expect(TopicFilter.matches(filter: filter, topic: topic) == matches)
    }

    @Test("invalid topic filters", arguments: ["", "/a/#/b", "/a/b#", "/a/+b"])
    func invalidFilters(filter: String) {
        #expect(!TopicFilter.isValid(filter))
    }

    @Test(
        "topics taken from /topic paths",
        arguments: [
            ("/topic/p/d/upload", "/p/d/upload"),
            ("/topic/$system/p/d/tmodel/property/post", "/$system/p/d/tmodel/property/post"),
            ("/topic/%24system/p/d/shadow/upstream", "/$system/p/d/shadow/upstream"),
            ("/topic/p-1/d_2/a@b:c", "/p-1/d_2/a@b:c"),
            ("/topic", nil),
            ("/topic/", nil),
            ("/topic/p//upload", nil),
            ("/topic/p/d/upload/", nil),
            ("/topic/p/d/+", nil),
            ("/topic/p/d/%23", nil),
            ("/topic/p/d/%zz", nil),
            ("/topic/p/$system/x", nil),
            ("/topic/1/2/3/4/5/6/7/8", nil),
            ("/topic/1/2/3/4/5/6/7", "/1/2/3/4/5/6/7"),
            ("/topic/" + String(repeating: "a", count: 128), nil),
            ("/topic/" + String(repeating: "a", count: 127), "/" + String(repeating: "a", count: 127)),
        ] as [(String, String?)])
    func topics(path: String, topic: String?) {
        #expect(EmulatorResponder.topic(fromPath: path) == topic)
    }

    @Test("JWTs verify with their key only, and reject tampering")
    func jwt() throws {
        let key = LibCrypto.randomBytes(32)
        let claims = TokenClaims(ProductSN: "p", DeviceSN: "d", iat: 10, exp: 20, jti: "abc")
        let token = JSONWebToken.sign(claims, key: key)
        #expect(try JSONWebToken.verify(token, key: key).get() == claims)
        guard case .failure(.badSignature) = JSONWebToken.verify(token, key: LibCrypto.randomBytes(32)) else {
            Issue.record("a token verified under another key")
            return
        }
        guard case .failure(.malformed) = JSONWebToken.verify("a.b", key: key) else {
            Issue.record("a two-part token was accepted")
            return
        }
        #expect(JSONWebToken.base64URL([0xfb, 0xff]) == "-_8")
        #expect(JSONWebToken.decodeBase64URL("-_8") == [0xfb, 0xff])
    }

    @Test("auth timestamps: seconds, milliseconds, numeric strings")
    func timestamps() {
        #expect(AuthRequestBody.seconds(of: .number(1_700_000_000)) == 1_700_000_000)
        #expect(AuthRequestBody.seconds(of: .number(1_700_000_000_123)) == 1_700_000_000.123)
        #expect(AuthRequestBody.seconds(of: .text(" 1700000000000 ")) == 1_700_000_000)
        #expect(AuthRequestBody.seconds(of: .text("soon")) == nil)
    }
}
