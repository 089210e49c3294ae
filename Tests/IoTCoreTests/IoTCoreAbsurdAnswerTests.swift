import FoundationEssentials
import Glibc
import Testing

@testable import IoTCore

/// What the fuzzers found in answers and files the client reads (reproducers under Fuzz/Regressions/).
@Suite("Absurd expiries and ambiguous answer keys")
struct IoTCoreAbsurdAnswerTests {
    static let now = Date(timeIntervalSince1970: 1_700_000_000)

    @Test("a JWT with exp 9e18 is trusted for at most maxLifetime and renewed")
    func farFutureJWT() async throws {
        // Fuzz/Regressions/serveranswer/jwt-exp-far-future: computing the lifetime trapped.
        let token = Fixtures.jwt(exp: 9_000_000_000_000_000_000, iat: 0)
        let info = TokenInfo(token: token, receivedAt: Self.now)
        #expect(info.expiresAt == Self.now.addingTimeInterval(TokenInfo.maxLifetime.seconds))
        #expect(info.lifetime == TokenInfo.maxLifetime)
        #expect(!info.needsRenewal(at: Self.now, renewBefore: .seconds(86_400)))
        #expect(info.needsRenewal(at: info.expiresAt.addingTimeInterval(-3600), renewBefore: .seconds(86_400)))

        let transport = ScriptedTransport { request, _ in
            request.url.hasSuffix("/auth") ? Fixtures.authOK(token: token) : Fixtures.publishOK()
        }
        let client = try IoTCoreClient(
            configuration: Fixtures.configuration(), logger: Fixtures.logger, transport: transport,
            time: ManualTime().source)
        #expect(try await client.publish(topic: "/p/d/upload", body: [1]) == .delivered(messageID: "123456"))
        #expect(try await client.publish(topic: "/p/d/upload", body: [2]) == .delivered(messageID: "123456"))
        #expect(transport.authRequests.count == 1)
        #expect(client.currentToken?.expiresAt == Self.now.addingTimeInterval(TokenInfo.maxLifetime.seconds))
    }

    @Test("an expiry set past maxLifetime after creation still gives a bounded lifetime")
    func mutatedExpiry() {
        var info = TokenInfo(token: "opaque", receivedAt: Self.now)
        info.expiresAt = Date(timeIntervalSince1970: 1e300)
        #expect(info.lifetime == TokenInfo.maxLifetime)
        info.expiresAt = Date(timeIntervalSince1970: -1e300)
        #expect(info.lifetime == .zero)
    }

    @Test("a cache file with expiresAt 1e300: the restart authenticates again instead of crashing")
    func absurdCacheEntry() async throws {
        // Fuzz/Regressions/tokencache/expiry-1e300: every restart trapped in needsRenewal.
        let directory = Fixtures.temporaryDirectory()
        defer { Fixtures.removeTokenDirectory(directory) }
        let configuration = Fixtures.configuration(stateDirectory: directory)
        let store = TokenStore(directory: directory, credentials: Fixtures.credentials)
        try store.save(IoTCoreTokenStoreTests.token(), endpoint: configuration.endpoint)
        let cached = #"{"version": \#(TokenStore.fileVersion), "endpoint": "\#(configuration.endpoint)", "#
            + #""token": "opaque-token", "expiresAt": 1e+300, "obtainedAt": 0, "expirySource": "assumed", "#
            + #""credentials": "\#(store.fingerprint)"}"#
        let fd = open(store.path, O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        #expect(cached.utf8.withContiguousStorageIfAvailable { write(fd, $0.baseAddress, $0.count) } == cached.utf8.count)
        close(fd)

        let loaded = try store.load(endpoint: configuration.endpoint).get()
        #expect(loaded.info.expiresAt == Date(timeIntervalSince1970: TokenInfo.maxLifetime.seconds))
        #expect(!loaded.info.isUsable(at: Self.now))

        let fresh = Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000)
        let transport = ScriptedTransport { request, _ in
            request.url.hasSuffix("/auth") ? Fixtures.authOK(token: fresh) : Fixtures.publishOK()
        }
        let restarted = try IoTCoreClient(
            configuration: configuration, logger: Fixtures.logger, transport: transport, time: ManualTime().source)
        #expect(try await restarted.publish(topic: "/p/d/upload", body: [1]) == .delivered(messageID: "123456"))
        #expect(transport.authRequests.count == 1)
        #expect(transport.publishRequests.last?.headers.first { $0.name == "Password" }?.value == fresh)
    }

    @Test(
        "keys differing only in case: the exact spelling wins, else the smallest, whatever the order",
        arguments: [
            (#"{"TokEn":"","Token":"e"}"#, "e"),
            (#"{"Token":"e","TokEn":""}"#, "e"),
            (#"{"TOKEN":"a","token":"b","tOKEN":"c"}"#, "a"),
            (#"{"tOKEN":"c","token":"b","TOKEN":"a"}"#, "a"),
            (#"{"token":5,"Token":"x"}"#, "x"),
        ])
    func caseVariantKeys(body: String, token: String) throws {
        // Fuzz/Regressions/serveranswer/duplicate-token-keys-differing-in-case: the winner changed between parses.
        for _ in 0..<20 {
            let answer = try #require(ServerAnswer.parse(Array(body.utf8)))
            #expect(answer.token == token)
        }
        let mixed = try #require(ServerAnswer.parse(Array(#"{"retcode":1,"RETCODE":2,"message":"b","MESSAGE":"a"}"#.utf8)))
        #expect(mixed.retCode == 2)
        #expect(mixed.message == "a")
    }
}
