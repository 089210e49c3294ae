/// Standard base64 (RFC 4648 §4, with `=` padding) without Foundation: dead-letter files carry payloads in it,
/// since a payload may be any bytes and a JSON line may not.
public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The length of the encoding of `count` bytes.
    public static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the encoding of `bytes` to `buffer`.
    public static func encode(_ bytes: some Collection<UInt8>, to buffer: inout [UInt8]) {
        buffer.reserveCapacity(buffer.count + encodedCount(bytes.count))
        let handled: Void? = bytes.withContiguousStorageIfAvailable { encode($0, to: &buffer) }
        if handled == nil {
            Array(bytes).withUnsafeBufferPointer { encode($0, to: &buffer) }
        }
    }

    /// The encoding of `bytes` as text.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var buffer: [UInt8] = []
        encode(bytes, to: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    private static func encode(_ bytes: UnsafeBufferPointer<UInt8>, to buffer: inout [UInt8]) {
        alphabet.withUnsafeBufferPointer { alphabet in
            var index = 0
            let whole = bytes.count - bytes.count % 3
            while index < whole {
                let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                buffer.append(alphabet[Int(group >> 18)])
                buffer.append(alphabet[Int(group >> 12 & 0x3F)])
                buffer.append(alphabet[Int(group >> 6 & 0x3F)])
                buffer.append(alphabet[Int(group & 0x3F)])
                index += 3
            }
            switch bytes.count - whole {
            case 1:
                let group = UInt32(bytes[index]) << 16
                buffer.append(alphabet[Int(group >> 18)])
                buffer.append(alphabet[Int(group >> 12 & 0x3F)])
                buffer.append(contentsOf: [UInt8(ascii: "="), UInt8(ascii: "=")])
            case 2:
                let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
                buffer.append(alphabet[Int(group >> 18)])
                buffer.append(alphabet[Int(group >> 12 & 0x3F)])
                buffer.append(alphabet[Int(group >> 6 & 0x3F)])
                buffer.append(UInt8(ascii: "="))
            default:
                break
            }
        }
    }

    /// Decodes standard or URL-safe base64, padding optional; nil on invalid input.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in text.utf8 {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return output
    }
}
