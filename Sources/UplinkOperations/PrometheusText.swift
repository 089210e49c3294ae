import UplinkCore

/// Pieces of the Prometheus text exposition format that swift-prometheus's registry does not cover.
enum PrometheusText {
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names may not use `:`, and the names here never do).
    static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":") || (0x30...0x39).contains(byte)
                || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
        }
    }

    /// Writes a histogram family: cumulative `_bucket` series with `le`, then `_sum` and `_count`.
    static func appendHistogramFamily(
        name: String, help: String, series: [([(String, String)], HistogramValue)], to output: inout [UInt8]
    ) {
        guard !series.isEmpty else { return }
        output += "# HELP \(name) \(escapeHelp(help))\n# TYPE \(name) histogram\n".utf8
        for (labels, histogram) in series {
            var cumulative = 0
            for (index, bound) in histogram.bounds.enumerated() {
                cumulative += index < histogram.bucketCounts.count ? histogram.bucketCounts[index] : 0
                output += "\(name)_bucket\(labelSet(labels + [("le", format(bound))])) \(cumulative)\n".utf8
            }
            output += "\(name)_bucket\(labelSet(labels + [("le", "+Inf")])) \(histogram.count)\n".utf8
            output += "\(name)_sum\(labelSet(labels)) \(format(histogram.sum))\n".utf8
            output += "\(name)_count\(labelSet(labels)) \(histogram.count)\n".utf8
        }
    }

    static func labelSet(_ labels: [(String, String)]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
    }

    static func escapeLabelValue(_ value: String) -> String {
        var result = ""
        for character in value {
            switch character {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }

    static func escapeHelp(_ help: String) -> String {
        var result = ""
        for character in help {
            switch character {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }

    /// A number as Prometheus reads it: integers without a fraction, others in Swift's shortest form.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Inf" : "+Inf" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
