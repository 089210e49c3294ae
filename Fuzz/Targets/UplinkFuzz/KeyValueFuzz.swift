@testable import UplinkCore
@testable import UplinkPlugins

/// The `json` transform's key=value mode. Input: pair and key/value delimiter choices, then the line.
///
/// Properties: no crash; keys are non-empty and never hold the key/value delimiter; the pairs written back
/// (every value quoted and escaped) parse into the same fields, in the same order; the record writes as JSON.
enum KeyValueFuzz {
    static let pairDelimiters: [UInt8] = [UInt8(ascii: " "), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "&")]
    static let kvDelimiters: [UInt8] = [UInt8(ascii: "="), UInt8(ascii: ":")]

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var input = FuzzInput(data)
        let pairDelimiter = input.pick(pairDelimiters)
        let kvDelimiter = input.pick(kvDelimiters)
        let line = input.rest

        var fields = Fields()
        let problem = JSONTransform.splitPairs(
            line, pairDelimiter: pairDelimiter, kvDelimiter: kvDelimiter, into: &fields)
        if problem == nil {
            var encoded: [UInt8] = []
            for field in fields {
                require(!field.name.isEmpty, "an empty key was accepted")
                require(!field.name.utf8.contains(kvDelimiter), "a key holds the key/value delimiter: \(field.name)")
                guard case .string(let value) = field.value else {
                    require(false, "a kv value is not a string")
                    return
                }
                if !encoded.isEmpty { encoded.append(pairDelimiter) }
                encoded.append(contentsOf: field.name.utf8)
                encoded.append(kvDelimiter)
                encoded.append(UInt8(ascii: "\""))
                for byte in value.utf8 {
                    if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { encoded.append(UInt8(ascii: "\\")) }
                    encoded.append(byte)
                }
                encoded.append(UInt8(ascii: "\""))
            }
            var again = Fields()
            let reparse = JSONTransform.splitPairs(
                encoded[...], pairDelimiter: pairDelimiter, kvDelimiter: kvDelimiter, into: &again)
            require(reparse == nil, "written pairs are refused (\(reparse ?? "")): \(JSONFuzz.quote(encoded))")
            require(again == fields, "written pairs parse into other fields: \(JSONFuzz.quote(encoded))")
        }

        var transform = JSONTransform()
        transform.mode = .kv
        transform.pairDelimiter = pairDelimiter
        transform.kvDelimiter = kvDelimiter
        transform.types = [.init("n", .int), .init("f", .float), .init("b", .bool)]
        TransformCheck.parse(transform, line)
    }
}
