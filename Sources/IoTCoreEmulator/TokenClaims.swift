/// The claims of a token the emulator issues, named as in the vendor's sample token.
struct TokenClaims: Codable, Sendable, Hashable {
    var ProductSN: String
    var DeviceSN: String
    /// Issued at, Unix seconds.
    var iat: Int64
    /// Expires at, Unix seconds (`iat` + the lifetime rounded up to whole seconds).
    var exp: Int64
    /// A random token id; the emulator keys the precise expiry instant by it.
    var jti: String
}
