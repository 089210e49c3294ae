import FoundationEssentials

/// The claims the client reads from an IoT-Core token. The token stays opaque otherwise: the server's
/// 100073/100074 remain the authority on whether it is still good.
struct JWTClaims: Sendable, Hashable {
    /// `exp`, seconds since the epoch by the server's clock.
    var expiresAt: Int64?
    /// `iat`, seconds since the epoch by the server's clock.
    var issuedAt: Int64?
}

/// Reads a JWT's payload without checking its signature (the key is the server's).
enum JWT {
    /// The claims of `token`, or `nil` when it is not three dot-separated parts with a base64url JSON object in
    /// the middle. A claim of the wrong type is left `nil`.
    static func claims(of token: String) -> JWTClaims? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1].utf8.count <= 16_384,
            let payload = base64URLDecode(parts[1])
        else { return nil }
        return try? JSONDecoder().decode(Payload.self, from: payload).claims
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = String(text).replacing("-", with: "+").replacing("_", with: "/")
        // JWTs drop the padding; Data(base64Encoded:) wants it back.
        switch base64.utf8.count % 4 {
        case 0: break
        case 2: base64 += "=="
        case 3: base64 += "="
        default: return nil
        }
        return Data(base64Encoded: base64)
    }

    private struct Payload: Decodable {
        var claims = JWTClaims()

        enum CodingKeys: String, CodingKey {
            case exp
            case iat
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            claims.expiresAt = Self.seconds(container, .exp)
            claims.issuedAt = Self.seconds(container, .iat)
        }

        // NumericDate is a JSON number that may carry a fraction.
        static func seconds(_ container: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) -> Int64? {
            if let value = try? container.decode(Int64.self, forKey: key) { return value }
            if let value = try? container.decode(Double.self, forKey: key), value.isFinite,
                value > -9.0e18, value < 9.0e18
            {
                return Int64(value.rounded(.down))
            }
            return nil
        }
    }
}
