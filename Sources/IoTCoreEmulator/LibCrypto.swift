internal import CCrypto

/// The few libcrypto (OpenSSL) primitives the emulator needs: HMAC-SHA256 for `/auth` signatures and JWTs,
/// and secure random bytes for the token key and certificate serials.
enum LibCrypto {
    /// HMAC-SHA256 of `message` keyed with `key`.
    static func hmacSHA256(key: some Collection<UInt8>, message: some Collection<UInt8>) -> [UInt8] {
        let key = Array(key)
        let message = Array(message)
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { keyBytes in
            message.withUnsafeBufferPointer { messageBytes in
                output.withUnsafeMutableBufferPointer { outputBytes in
                    // An empty Swift array may hand out a nil base address; libcrypto wants a valid pointer.
                    var empty: UInt8 = 0
                    return withUnsafeMutablePointer(to: &empty) { emptyPointer in
                        HMAC(
                            EVP_sha256(),
                            keyBytes.baseAddress ?? UnsafeRawPointer(emptyPointer),
                            Int32(keyBytes.count),
                            messageBytes.baseAddress ?? UnsafePointer(emptyPointer),
                            messageBytes.count,
                            outputBytes.baseAddress,
                            &length
                        )
                    }
                }
            }
        }
        precondition(result != nil, "HMAC-SHA256 failed in libcrypto")
        return Array(output.prefix(Int(length)))
    }

    /// `count` cryptographically secure random bytes.
    static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let result = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        if result != 1 {
            // RAND_bytes only fails when the OS entropy source does; the system generator is as good then.
            var generator = SystemRandomNumberGenerator()
            for index in bytes.indices { bytes[index] = generator.next() }
        }
        return bytes
    }

    /// Lowercase hexadecimal of `bytes`.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Compares in time independent of where the inputs differ, so a signature check leaks nothing.
    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    /// The oldest queued libcrypto error as text, and clears the queue.
    static func takeErrorDescription() -> String {
        let code = ERR_get_error()
        defer { ERR_clear_error() }
        if code == 0 { return "unknown libcrypto error" }
        var buffer = [CChar](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { ERR_error_string_n(code, $0.baseAddress, $0.count) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
