import FoundationEssentials

/// What the client knows about its current token; the token itself never leaves the client.
public struct TokenInfo: Sendable, Hashable, CustomStringConvertible {
    /// Where ``expiresAt`` comes from.
    public enum ExpirySource: String, Sendable, Hashable {
        /// The JWT's `exp` claim (read against the local clock, see ``TokenInfo/expiresAt``).
        case jwt
        /// The token did not decode as a JWT with `exp`: the documented validity of 7 days is assumed.
        case assumed
    }

    /// When the client stops using the token, by the local clock.
    ///
    /// It is the JWT's `exp` when that lies ahead of the local clock, but never later than the time of receipt
    /// plus the token's lifetime (`exp - iat`): a device clock running behind the server's must not keep a token
    /// past its real end. When `exp` already lies behind the local clock (a device clock running ahead), the
    /// lifetime counted from receipt is used instead, so a wrong clock never makes every token look expired.
    /// Never later than ``obtainedAt`` plus ``maxLifetime``.
    public var expiresAt: Date
    /// The JWT's `iat`, by the server's clock, when present.
    public var issuedAt: Date?
    /// When the client received the token, by the local clock.
    public var obtainedAt: Date
    /// Where ``expiresAt`` comes from.
    public var expirySource: ExpirySource

    /// Creates a value; the client derives these from the `/auth` answer. An expiry past ``maxLifetime`` after
    /// `obtainedAt` is cut to it.
    public init(expiresAt: Date, issuedAt: Date?, obtainedAt: Date, expirySource: ExpirySource) {
        self.expiresAt = min(expiresAt, obtainedAt.addingTimeInterval(Self.maxLifetime.seconds))
        self.issuedAt = issuedAt
        self.obtainedAt = obtainedAt
        self.expirySource = expirySource
    }

    /// The documented validity of a token, used when `exp` cannot be read.
    public static let assumedLifetime: Duration = .seconds(7 * 24 * 3600)

    /// The longest a token is trusted, whatever its `exp` or the token cache file says (30 days, four times the
    /// documented validity). A server JWT with `exp: 9e18` or a cache file with `expiresAt: 1e300` is cut to it,
    /// so the token is still renewed and a cached one from long ago counts as expired: the client authenticates
    /// again instead of keeping it forever.
    public static let maxLifetime: Duration = .seconds(30 * 24 * 3600)

    /// `TokenInfo(expiresAt: …, source: jwt)`; never the token.
    public var description: String {
        "TokenInfo(expiresAt: \(expiresAt.timeIntervalSince1970), obtainedAt: \(obtainedAt.timeIntervalSince1970), "
            + "source: \(expirySource.rawValue))"
    }

    /// Derives the expiry of `token` received at `receivedAt`.
    init(token: String, receivedAt: Date) {
        let claims = JWT.claims(of: token)
        let receipt = receivedAt.timeIntervalSince1970
        let issuedAt = claims?.issuedAt.map { Date(timeIntervalSince1970: Double($0)) }
        guard let exp = claims?.expiresAt else {
            self.init(
                expiresAt: receivedAt.addingTimeInterval(Self.assumedLifetime.seconds),
                issuedAt: issuedAt, obtainedAt: receivedAt, expirySource: .assumed
            )
            return
        }
        var lifetime = Self.assumedLifetime.seconds
        if let iat = claims?.issuedAt, exp > iat {
            lifetime = Double(exp) - Double(iat)
        }
        let expiry = Double(exp) > receipt ? min(Double(exp), receipt + lifetime) : receipt + lifetime
        self.init(
            expiresAt: Date(timeIntervalSince1970: expiry), issuedAt: issuedAt, obtainedAt: receivedAt,
            expirySource: .jwt
        )
    }

    /// The token's usable lifetime as the client sees it, from zero to ``maxLifetime`` (`expiresAt` is a
    /// public `var`: the bound is checked here too, or a far expiry would overflow the conversion).
    var lifetime: Duration {
        let seconds = expiresAt.timeIntervalSince(obtainedAt)
        guard seconds > 0 else { return .zero }  // also NaN
        return .milliseconds(Int64(min(seconds, Self.maxLifetime.seconds) * 1000))
    }

    /// Whether the token should be replaced at `now`. The margin is `renewBefore` but at most half the lifetime,
    /// so a short-lived token or a long `renewBefore` cannot make every request authenticate again.
    func needsRenewal(at now: Date, renewBefore: Duration) -> Bool {
        let margin = min(renewBefore.seconds, lifetime.seconds / 2)
        return expiresAt.timeIntervalSince(now) <= margin
    }

    /// Whether the token may still be sent at `now`.
    func isUsable(at now: Date) -> Bool {
        expiresAt > now
    }
}

/// A token and what is known about it. Internal: the token must not leak through the public API.
struct AuthToken: Sendable, Hashable {
    var value: Secret
    var info: TokenInfo
}
