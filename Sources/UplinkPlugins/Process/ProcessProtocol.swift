import Logging
import UplinkCore

/// The process-plugin protocol: newline-delimited JSON objects over the child's stdin (host to plugin) and
/// stdout (plugin to host); the child's stderr is left to the agent's stderr. Every message has a `type`.
///
/// Host to plugin: `init` (protocol, component, role, kinds, `config`), `batch` (`id`, `events`), `ack` (to a
/// source, for events it sent with an `id`) and `shutdown`. Plugin to host: `hello` (its answer to `init`:
/// protocol, name, kinds), `events` (`id` of the batch they come from, for a transform), `ack` (`id`, optional
/// `status: failed` and `events`), `log`, `error` and `done`. docs/writing-a-plugin.md has a transcript.
public enum ProcessProtocol {
    /// The protocol version this host speaks; `init` announces it and `hello` must repeat it.
    public static let version = 1
}

/// What a plugin says about itself in its `hello`: checked against the component's settings, and listed by
/// `uplink plugins --config`.
public struct PluginHello: Sendable {
    public var protocolVersion: Int
    public var name: String
    public var version: String?
    public var summary: String?
    /// The roles it can play, when it says (`role: "sink"` or `roles: [...]`).
    public var roles: [ComponentRole]
    /// `raw`, `record`, `message` or `any`; nil for a source.
    public var input: String?
    public var output: EventKind?
    /// The keys of `config:` it understands, for `uplink plugins` (name, type, default, description).
    public var options: [OptionSpec]
}

/// A message from a plugin, parsed from one line of its stdout.
enum PluginMessage {
    case hello(PluginHello)
    /// Events for the batch `id` (transforms), or new events (sources; `id` asks for an acknowledgement).
    case events(id: Int64?, [Value])
    /// The plugin is done with batch `id`: delivered, or given up when `failure` is set. A transform may put
    /// its outputs for the batch in the same message.
    case ack(id: Int64, failure: String?, events: [Value])
    case log(Logger.Level, String)
    /// A problem: with an `id`, that batch is given up; `fatal` stops the component without a restart.
    case error(String, id: Int64?, fatal: Bool)
    /// A source has nothing more to send.
    case done

    /// Parses one line; a line that is not a protocol message throws with a short quote of it.
    static func parse(_ line: ArraySlice<UInt8>) throws(ProcessProtocolViolation) -> PluginMessage {
        let value: Value
        do {
            value = try JSONReader.parse(line)
        } catch {
            throw ProcessProtocolViolation("not a JSON object: \(quote(line)) (\(error.message))")
        }
        guard case .object(let fields) = value else {
            throw ProcessProtocolViolation("not a JSON object: \(quote(line))")
        }
        guard case .string(let type)? = fields["type"] else {
            throw ProcessProtocolViolation("a message needs a string \"type\": \(quote(line))")
        }
        switch type {
        case "hello":
            return .hello(try parseHello(fields, line: line))
        case "events":
            return .events(id: try optionalID(fields, line: line), try eventList(fields, line: line, required: true))
        case "ack":
            guard let id = try optionalID(fields, line: line) else {
                throw ProcessProtocolViolation("an ack needs an integer \"id\": \(quote(line))")
            }
            var failure: String?
            if case .string(let status)? = fields["status"], status != "delivered" && status != "ok" {
                guard status == "failed" else {
                    throw ProcessProtocolViolation("an ack's status is delivered or failed, not \(quote(status))")
                }
                if case .string(let reason)? = fields["error"] { failure = reason } else { failure = "failed" }
            }
            return .ack(id: id, failure: failure, events: try eventList(fields, line: line, required: false))
        case "log":
            let level = fields["level"].flatMap { value -> Logger.Level? in
                if case .string(let name) = value { return Logger.Level(rawValue: name == "warn" ? "warning" : name) }
                return nil
            }
            return .log(level ?? .info, text(fields["message"]) ?? "")
        case "error":
            var fatal = false
            if case .bool(let flag)? = fields["fatal"] { fatal = flag }
            return .error(
                text(fields["message"]) ?? "(no message)", id: try optionalID(fields, line: line), fatal: fatal)
        case "done":
            return .done
        default:
            throw ProcessProtocolViolation("unknown message type \(quote(type))")
        }
    }

    private static func parseHello(_ fields: Fields, line: ArraySlice<UInt8>) throws(ProcessProtocolViolation)
        -> PluginHello
    {
        guard case .int(let version)? = fields["protocol"] else {
            throw ProcessProtocolViolation("hello needs an integer \"protocol\": \(quote(line))")
        }
        var roles: [ComponentRole] = []
        if case .string(let role)? = fields["role"], let parsed = ComponentRole(rawValue: role) { roles.append(parsed) }
        if case .array(let items)? = fields["roles"] {
            for case .string(let role) in items {
                if let parsed = ComponentRole(rawValue: role) { roles.append(parsed) }
            }
        }
        var output: EventKind?
        if let declared = text(fields["output"]) {
            guard let kind = EventKind(rawValue: declared) else {
                throw ProcessProtocolViolation("hello's \"output\" is raw, record or message, not \(quote(declared))")
            }
            output = kind
        }
        var options: [OptionSpec] = []
        if case .array(let items)? = fields["options"] {
            for case .object(let option) in items {
                guard let name = text(option["name"]) else { continue }
                options.append(
                    OptionSpec(
                        name, optionType(text(option["type"])),
                        default: option["default"].map { text($0) ?? $0.jsonText },
                        required: option["required"] == .bool(true), text(option["description"]) ?? ""))
            }
        }
        return PluginHello(
            protocolVersion: Int(version), name: text(fields["name"]) ?? "(unnamed)", version: text(fields["version"]),
            summary: text(fields["summary"]), roles: roles, input: text(fields["input"]), output: output,
            options: options)
    }

    /// A declared option type, in the names `uplink plugins` prints; anything else lists as `any`.
    static func optionType(_ name: String?) -> OptionSpec.ValueType {
        switch name {
        case "string": return .string
        case "int", "integer": return .int
        case "float", "number": return .float
        case "bool", "boolean": return .bool
        case "duration": return .duration
        case "size": return .size
        case "list", "string_list": return .stringList
        default: return .any
        }
    }

    private static func optionalID(_ fields: Fields, line: ArraySlice<UInt8>) throws(ProcessProtocolViolation) -> Int64?
    {
        switch fields["id"] {
        case nil, .null?: return nil
        case .int(let id)?: return id
        default: throw ProcessProtocolViolation("\"id\" must be an integer: \(quote(line))")
        }
    }

    private static func eventList(
        _ fields: Fields, line: ArraySlice<UInt8>, required: Bool
    ) throws(ProcessProtocolViolation) -> [Value] {
        switch fields["events"] {
        case .array(let items)?: return items
        case nil where !required: return []
        default: throw ProcessProtocolViolation("\"events\" must be a list: \(quote(line))")
        }
    }

    private static func text(_ value: Value?) -> String? {
        if case .string(let text)? = value { return text }
        return nil
    }

    /// The start of a line, for error messages: enough to recognise it, never a whole payload.
    static func quote(_ line: ArraySlice<UInt8>) -> String {
        let prefix = String(decoding: line.prefix(120), as: UTF8.self)
        return "'" + prefix + (line.count > 120 ? "…'" : "'")
    }

    /// A value from a line (a type, a status), quoted as short as the line itself.
    static func quote(_ text: String) -> String { quote(ArraySlice(text.utf8)) }
}

/// Builds the host's messages, one line each (with the newline).
enum HostMessage {
    static func initialize(
        component: String, role: ComponentRole, input: EventKind?, output: EventKind?, config: Value
    ) -> [UInt8] {
        var line: [UInt8] = []
        line.append(contentsOf: #"{"type":"init","protocol":"#.utf8)
        JSONWriter.appendInteger(Int64(ProcessProtocol.version), to: &line)
        line.append(contentsOf: #","component":"#.utf8)
        JSONWriter.appendString(component, to: &line)
        line.append(contentsOf: #","role":"#.utf8)
        JSONWriter.appendString(role.rawValue, to: &line)
        if let input {
            line.append(contentsOf: #","input":"#.utf8)
            JSONWriter.appendString(input.rawValue, to: &line)
        }
        if let output {
            line.append(contentsOf: #","output":"#.utf8)
            JSONWriter.appendString(output.rawValue, to: &line)
        }
        line.append(contentsOf: #","config":"#.utf8)
        config.appendJSON(to: &line)
        line.append(contentsOf: "}\n".utf8)
        return line
    }

    static func batch<E: Event>(id: Int64, events: ArraySlice<E>) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(64 + events.count * 96)
        line.append(contentsOf: #"{"type":"batch","id":"#.utf8)
        JSONWriter.appendInteger(id, to: &line)
        line.append(contentsOf: #","events":["#.utf8)
        var first = true
        for event in events {
            if !first { line.append(UInt8(ascii: ",")) }
            first = false
            EventCodec.encode(event, to: &line)
        }
        line.append(contentsOf: "]}\n".utf8)
        return line
    }

    static func ack(id: Int64, status: DeliveryStatus) -> [UInt8] {
        var line: [UInt8] = []
        line.append(contentsOf: #"{"type":"ack","id":"#.utf8)
        JSONWriter.appendInteger(id, to: &line)
        line.append(contentsOf: #","status":"#.utf8)
        let name: String
        switch status {
        case .delivered: name = "delivered"
        case .failed: name = "failed"
        case .dropped: name = "dropped"
        }
        JSONWriter.appendString(name, to: &line)
        line.append(contentsOf: "}\n".utf8)
        return line
    }

    static let shutdown: [UInt8] = Array(#"{"type":"shutdown"}"#.utf8) + [0x0A]
}

/// A plugin broke the protocol (a line that is not a message, a missing field).
struct ProcessProtocolViolation: Error, Sendable, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
