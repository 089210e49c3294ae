#if canImport(Glibc)
import Glibc
#endif
@testable import UplinkCore
@testable import UplinkPlugins

/// The `json` transform's regex mode, and the check of a `pattern` option.
///
/// Input: a choice among the patterns the examples and docs use, then the line. The patterns are fixed, so a
/// run explores lines rather than rediscovering that some patterns backtrack (that is a config-time question;
/// issue 16). Separately, the bytes as a pattern go through the option's check (compile, capture names).
///
/// Properties: no crash; a match yields only the pattern's named captures, each a substring of the line, and
/// a record that writes as JSON; capture names found by the option check are identifiers.
enum RegexFuzz {
    static let patterns: [String] = [
        #"^(?<time>\S+) (?<level>[A-Z]+) (?<message>.*)$"#,
        #"temp=(?<temperature>-?[0-9.]+)C hum=(?<humidity>[0-9]+)%"#,
        #"^(?<sensor>[a-z]+)[,;](?<value>[0-9.eE+-]+)(?:,(?<unit>\w+))?$"#,
        #"(?P<key>\w+)\s*[:=]\s*(?<val>"[^"]*"|\S+)"#,
        #"^\[(?<ts>[^\]]+)\]\s+(?<rest>.+)"#,
    ]

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var input = FuzzInput(data)
        let source = input.pick(patterns)
        let line = input.rest.prefix(4096)

        let pattern: LinePattern
        do {
            pattern = try LinePattern(source)
        } catch {
            require(false, "a documented pattern is refused: \(error)")
            return
        }
        var transform = JSONTransform()
        transform.mode = .regex
        transform.pattern = pattern
        transform.types = [.init("value", .float), .init("humidity", .int)]
        var scratch = try! JSONTransform.ParseScratch(pattern: pattern)
        var fields = Fields()
        if transform.parse(line, into: &fields, scratch: &scratch) == nil || !fields.isEmpty {
            // Bytes, not Strings: a capture may end before a combining mark that String.contains would
            // treat as part of the same character (`=\u{65E}`), yet it is exactly a run of the line's bytes.
            let bytes = Array(line)
            for field in fields {
                require(pattern.captureNames.contains(field.name), "a field that is no capture: \(field.name)")
                if case .string(let captured) = field.value {
                    let needle = Array(captured.utf8)
                    require(needle.isEmpty || bytes.firstRange(of: needle) != nil, "a capture that is not in the line")
                }
            }
        }
        TransformCheck.parse(transform, line)

        // The bytes as a `pattern` option (short: compiling is the point, not matching).
        let candidate = String(decoding: data.prefix(256), as: UTF8.self)
        guard let compiled = try? LinePattern(candidate) else { return }
        for name in compiled.captureNames {
            require(
                !name.isEmpty && name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isalnum(Int32($0)) != 0 },
                "a capture name that is no identifier: \(name.debugDescription)")
        }
    }
}
