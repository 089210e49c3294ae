internal import CCrypto

/// The `/auth` request signature: HMAC-SHA256 keyed with the device secret over the exact body bytes.
public enum Signer {
    /// Signs `body` with `secret` and returns the 64 lowercase hex digits that go in the `Authorization` header.
    ///
    /// The signature covers the bytes as sent, so sign the encoded body, never a re-encoding of it.
    public static func sign(body: some Collection<UInt8>, secret: Secret) -> String {
        let key = Array(secret.exposedValue.utf8)
        let message = Array(body)
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var digestLength: UInt32 = 0
        let ok = key.withUnsafeBytes { keyBytes in
            message.withUnsafeBufferPointer { messageBytes in
                digest.withUnsafeMutableBufferPointer { out in
                    // HMAC() accepts a null pointer only with a zero length; an empty array's base address
                    // may be nil, so give it a valid one.
                    var zero: UInt8 = 0
                    return withUnsafePointer(to: &zero) { zeroPointer in
                        HMAC(
                            EVP_sha256(),
                            keyBytes.baseAddress ?? UnsafeRawPointer(zeroPointer),
                            Int32(keyBytes.count),
                            messageBytes.baseAddress ?? zeroPointer,
                            messageBytes.count,
                            out.baseAddress,
                            &digestLength
                        ) != nil
                    }
                }
            }
        }
        // HMAC-SHA256 fails only when libcrypto cannot allocate; there is nothing to sign with then.
        precondition(ok && digestLength == 32, "libcrypto HMAC-SHA256 failed")
        return hexString(digest.prefix(Int(digestLength)))
    }

    static func hexString(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
