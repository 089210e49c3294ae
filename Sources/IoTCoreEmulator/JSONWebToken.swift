#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// HS256 JSON Web Tokens (RFC 7519), signed with HMAC-SHA256 from libcrypto.
enum JSONWebToken {
    /// Why a token was rejected.
    enum Failure: Error, Sendable {
        /// Not three base64url parts, a wrong header, or claims that do not decode.
        case malformed
        /// The signature does not match (another key, or altered content).
        case badSignature
    }

    private static let header = #"{"alg":"HS256","typ":"JWT"}"#

    /// A signed token carrying `claims`.
    static func sign(_ claims: TokenClaims, key: [UInt8]) -> String {
        let payload = JSONValue.object([
            ("ProductSN", .string(claims.ProductSN)),
            ("DeviceSN", .string(claims.DeviceSN)),
            ("iat", .int(Int(claims.iat))),
            ("exp", .int(Int(claims.exp))),
            ("jti", .string(claims.jti)),
        ])
        let signingInput = base64URL(Array(header.utf8)) + "." + base64URL(Array(payload.utf8))
        let signature = LibCrypto.hmacSHA256(key: key, message: Array(signingInput.utf8))
        return signingInput + "." + base64URL(signature)
    }

    /// The claims of `token` when its signature is valid under `key`. Expiry is the caller's business.
    static func verify(_ token: String, key: [UInt8]) -> Result<TokenClaims, Failure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let headerBytes = decodeBase64URL(parts[0]),
            let payloadBytes = decodeBase64URL(parts[1]),
            let signature = decodeBase64URL(parts[2])
        else { return .failure(.malformed) }
        let expected = LibCrypto.hmacSHA256(key: key, message: Array("\(parts[0]).\(parts[1])".utf8))
        guard LibCrypto.constantTimeEquals(expected, signature) else { return .failure(.badSignature) }
        struct Header: Decodable { var alg: String }
        guard let decodedHeader = try? JSONDecoder().decode(Header.self, from: Data(headerBytes)),
            decodedHeader.alg == "HS256",
            let claims = try? JSONDecoder().decode(TokenClaims.self, from: Data(payloadBytes))
        else { return .failure(.malformed) }
        return .success(claims)
    }

    /// Unpadded base64url (RFC 4648 §5), as JWTs use.
    static func base64URL(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        text = String(
            text.compactMap { character -> Character? in
                switch character {
                case "+": return "-"
                case "/": return "_"
                case "=": return nil
                default: return character
                }
            })
        return text
    }

    /// Decodes unpadded base64url; `nil` when it is not.
    static func decodeBase64URL(_ text: Substring) -> [UInt8]? {
        var standard = String(
            text.map { character -> Character in
                switch character {
                case "-": return "+"
                case "_": return "/"
                default: return character
                }
            })
        // Standard-alphabet characters and padding are not base64url: such a token is malformed.
        if text.contains(where: { $0 == "+" || $0 == "/" || $0 == "=" }) { return nil }
        while standard.utf8.count % 4 != 0 { standard += "=" }
        guard let data = Data(base64Encoded: standard) else { return nil }
        return Array(data)
    }
}
