import FoundationEssentials
import Testing

@testable import IoTCore

@Suite("JWT and token expiry")
struct IoTCoreJWTTests {
    @Test("exp and iat decode")
    func valid() throws {
        let claims = try #require(JWT.claims(of: Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000)))
        #expect(claims.expiresAt == 1_700_604_800)
        #expect(claims.issuedAt == 1_700_000_000)
    }

    @Test("the doc's sample token shape: padding-free base64url with - and _")
    func base64URL() throws {
        // {"exp":1524448722,"x":"??>"} encodes with '-' or '_' characters in base64url.
        let payload = Fixtures.base64URL(#"{"exp":1524448722,"x":"??>>"}"#)
        #expect(payload.contains("_") || payload.contains("-"))
        let claims = try #require(JWT.claims(of: "e30." + payload + ".sig"))
        #expect(claims.expiresAt == 1_524_448_722)
    }

    @Test(
        "malformed tokens do not decode",
        arguments: [
            "", "opaque-token", "a.b", "a.b.c.d", "e30.!!!.sig", "e30." + Fixtures.base64URL("[1,2]") + ".s",
            "e30." + Fixtures.base64URL("not json") + ".s", "e30.a.s",
        ])
    func malformed(_ token: String) {
        #expect(JWT.claims(of: token) == nil)
    }

    @Test("missing or mistyped exp")
    func missingExp() throws {
        let claims = try #require(JWT.claims(of: Fixtures.jwt(exp: nil, iat: 1_700_000_000)))
        #expect(claims.expiresAt == nil)
        let mistyped = try #require(JWT.claims(of: "e30." + Fixtures.base64URL(#"{"exp":"soon"}"#) + ".s"))
        #expect(mistyped.expiresAt == nil)
        let fractional = try #require(JWT.claims(of: "e30." + Fixtures.base64URL(#"{"exp":1700000000.75}"#) + ".s"))
        #expect(fractional.expiresAt == 1_700_000_000)
    }

    static let now = Date(timeIntervalSince1970: 1_700_000_000)

    @Test("expiry from exp when the clocks agree")
    func expiryFromExp() {
        let info = TokenInfo(token: Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000), receivedAt: Self.now)
        #expect(info.expirySource == .jwt)
        #expect(info.expiresAt == Date(timeIntervalSince1970: 1_700_604_800))
        #expect(info.issuedAt == Date(timeIntervalSince1970: 1_700_000_000))
    }

    @Test("an opaque token is assumed valid for 7 days")
    func assumed() {
        let info = TokenInfo(token: "opaque", receivedAt: Self.now)
        #expect(info.expirySource == .assumed)
        #expect(info.expiresAt == Self.now.addingTimeInterval(7 * 24 * 3600))
        let noExp = TokenInfo(token: Fixtures.jwt(exp: nil, iat: 1), receivedAt: Self.now)
        #expect(noExp.expirySource == .assumed)
    }

    @Test("a device clock ahead of the server does not make the token look expired")
    func clockAhead() {
        // The server issued at 1_700_000_000, but the device thinks it is 30 days later.
        let deviceNow = Self.now.addingTimeInterval(30 * 24 * 3600)
        let info = TokenInfo(token: Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000), receivedAt: deviceNow)
        #expect(info.expiresAt == deviceNow.addingTimeInterval(604_800))
        #expect(!info.needsRenewal(at: deviceNow, renewBefore: .seconds(86_400)))
    }

    @Test("a device clock behind the server does not keep the token too long")
    func clockBehind() {
        let deviceNow = Self.now.addingTimeInterval(-10 * 24 * 3600)
        let info = TokenInfo(token: Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000), receivedAt: deviceNow)
        #expect(info.expiresAt == deviceNow.addingTimeInterval(604_800))
    }

    @Test("renewal: within renewBefore, at most half the lifetime")
    func renewal() {
        let info = TokenInfo(token: Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000), receivedAt: Self.now)
        let day: Double = 86_400
        #expect(!info.needsRenewal(at: Self.now.addingTimeInterval(5 * day), renewBefore: .seconds(86_400)))
        #expect(info.needsRenewal(at: Self.now.addingTimeInterval(6 * day + 1), renewBefore: .seconds(86_400)))
        // renewBefore longer than the lifetime must not renew on every request.
        #expect(!info.needsRenewal(at: Self.now.addingTimeInterval(day), renewBefore: .seconds(30 * 86_400)))
        #expect(info.needsRenewal(at: Self.now.addingTimeInterval(3.5 * day), renewBefore: .seconds(30 * 86_400)))
        #expect(info.isUsable(at: Self.now.addingTimeInterval(7 * day - 1)))
        #expect(!info.isUsable(at: Self.now.addingTimeInterval(7 * day)))
    }

    @Test("TokenInfo never prints the token")
    func description() {
        let token = Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000)
        let info = TokenInfo(token: token, receivedAt: Self.now)
        #expect(!String(describing: info).contains(token))
        let auth = AuthToken(value: Secret(token), info: info)
        #expect(!String(describing: auth).contains(token))
        #expect(!String(reflecting: auth).contains(token))
    }
}
