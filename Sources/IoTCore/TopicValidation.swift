/// The local check of a publish topic, before it becomes a URL path.
///
/// The topic goes into the URL verbatim (`/topic` + topic, a literal `$` kept), so whatever would change the
/// URL's meaning is refused here instead of being sent: a query or fragment (`?`, `#`), whitespace and control
/// characters, non-ASCII, percent signs and backslashes, MQTT wildcards (`+`, `#`), and `.`/`..` levels,
/// which URL normalisation would resolve into another path such as `/auth`. Everything else, including the
/// documented length and level limits, is left to the service, whose answer (230, 100075) is authoritative.
enum TopicValidation {
    /// Why `topic` cannot be published, or `nil` when it can be sent.
    static func problem(in topic: String) -> String? {
        guard !topic.isEmpty else { return "the topic is empty" }
        guard topic.utf8.first == UInt8(ascii: "/") else { return "the topic does not start with \"/\"" }
        guard topic.utf8.count <= 1024 else { return "the topic is longer than 1024 bytes" }
        for byte in topic.utf8 {
            switch byte {
            case 0x00...0x20, 0x7f: return "the topic contains whitespace or a control character"
            case 0x80...0xff: return "the topic contains a non-ASCII character"
            case UInt8(ascii: "?"): return "the topic contains \"?\"; no query string is allowed"
            case UInt8(ascii: "#"), UInt8(ascii: "+"): return "the topic contains an MQTT wildcard"
            case UInt8(ascii: "%"), UInt8(ascii: "\\"): return "the topic contains \"%\" or \"\\\""
            default: continue
            }
        }
        for level in topic.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if level.elementsEqual(".".utf8) || level.elementsEqual("..".utf8) {
                return "the topic contains a \".\" or \"..\" level"
            }
        }
        return nil
    }

    /// Why `level` cannot be one level of a topic by IoT-Core's rule (letters, digits and `- _ @ :`), or nil.
    /// Serial numbers are checked with it: they are a level of every topic the device publishes to, so one the
    /// service would refuse dead-letters every message.
    static func levelProblem(in level: String) -> String? {
        if level.isEmpty { return "must not be empty" }
        for byte in level.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "@"),
                UInt8(ascii: ":"):
                continue
            default:
                return "may only use letters, digits and - _ @ : (it is part of every topic), got '\(level)'"
            }
        }
        return nil
    }
}

extension IoTCoreClient {
    /// Why `level` (a ProductSN or DeviceSN) cannot be a level of the device's topics, or nil.
    public static func topicLevelProblem(_ level: String) -> String? {
        TopicValidation.levelProblem(in: level)
    }

    /// Why ``publish(topic:body:)`` would refuse `topic` without sending it (and a sink would dead-letter every
    /// message to it), or nil; for checking a configuration before it runs.
    public static func topicProblem(_ topic: String) -> String? {
        TopicValidation.problem(in: topic)
    }
}
