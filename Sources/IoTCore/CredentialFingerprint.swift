/// What binds a cached token to the credentials it was obtained with, so a changed `device_secret` (rotated,
/// or mistyped after a good run) authenticates again instead of publishing with the old token until it expires.
///
/// It is HMAC-SHA256 keyed with the device secret (``Signer``, the project's one HMAC) over a fixed label and
/// the serial numbers: the secret cannot be read back from it, and the label keeps it from ever equalling an
/// `/auth` signature (which is the same HMAC over the `/auth` body), so the cache file holds nothing that
/// authenticates.
enum CredentialFingerprint {
    static let label = "uplink token cache v2"

    /// 64 lowercase hex digits.
    static func of(_ credentials: DeviceCredentials) -> String {
        // NUL separators: no serial number can contain one and move bytes from one field into another.
        let message = Array(label.utf8) + [0] + Array(credentials.productSN.utf8) + [0]
            + Array(credentials.deviceSN.utf8)
        return Signer.sign(body: message, secret: credentials.deviceSecret)
    }
}
