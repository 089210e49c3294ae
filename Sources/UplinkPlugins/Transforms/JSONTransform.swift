#if canImport(Glibc)
import Glibc
#endif
import Logging
import UplinkCore

/// `json`: turns raw lines into structured records.
///
/// `mode: raw` puts the line in a `message` field (invalid UTF-8 becomes U+FFFD, never an error);
/// `mode: json` parses each line as a JSON object. Optional fields add the read time, host, source id, path
/// and a sequence number. A line that does not parse is handled by `on_error`, always counted.
public struct JSONTransform: TransformStage {
    public typealias Input = RawEvent
    public typealias Output = Record

    public enum Mode: String, Sendable, CaseIterable { case raw, json }
    public enum ErrorPolicy: String, Sendable, CaseIterable {
        /// Drop the line, counted.
        case drop
        /// Keep it as a raw `message` record with an `error` field.
        case keepRaw = "keep_raw"
    }

    public static let descriptor = PluginDescriptor(
        type: "json", role: .transform,
        summary: "Wraps raw lines into JSON records: the line as a message field, or parsed as a JSON object.",
        options: [
            OptionSpec("mode", .enumeration(Mode.allCases.map(\.rawValue)), default: "raw", "raw: the line becomes `message_field`; json: the line is a JSON object"),
            OptionSpec("message_field", .string, default: "message", "field that holds the line in raw mode"),
            OptionSpec("timestamp_field", .string, "add the read time (Unix ms) under this name"),
            OptionSpec("host_field", .string, "add the host name under this name"),
            OptionSpec("source_field", .string, "add the source component id under this name"),
            OptionSpec("path_field", .string, "add the file path or device under this name"),
            OptionSpec("sequence_field", .string, "add a per-component sequence number under this name"),
            OptionSpec("on_error", .enumeration(ErrorPolicy.allCases.map(\.rawValue)), default: "drop", "what to do with a line that does not parse"),
        ],
        accepts: [.raw], output: .kind(.record)
    ) { context in
        let config = context.config
        var transform = JSONTransform()
        transform.mode = config.enumeration("mode", default: .raw)
        transform.messageField = config.string("message_field", default: "message")
        transform.timestampField = config.string("timestamp_field")
        transform.hostField = config.string("host_field")
        transform.sourceField = config.string("source_field")
        transform.pathField = config.string("path_field")
        transform.sequenceField = config.string("sequence_field")
        transform.onError = config.enumeration("on_error", default: .drop)
        return .transform(transform)
    }

    public var mode: Mode = .raw
    public var messageField = "message"
    public var timestampField: String?
    public var hostField: String?
    public var sourceField: String?
    public var pathField: String?
    public var sequenceField: String?
    public var onError: ErrorPolicy = .drop

    public init() {}

    public func run(context: ComponentContext, input: Inbox<RawEvent>, output: Outbox<Record>) async throws {
        let host = hostField == nil ? "" : Self.hostName()
        var sequence: Int64 = 0
        var parseErrors = 0
        for await chunk in input {
            var records: [Record] = []
            records.reserveCapacity(chunk.count)
            for event in chunk.events {
                var fields: Fields
                switch mode {
                case .raw:
                    fields = Fields()
                    fields.append(messageField, .string(String(decoding: event.bytes, as: UTF8.self)))
                case .json:
                    do {
                        let value = try JSONReader.parse(event.bytes)
                        guard case .object(let object) = value else {
                            throw JSONReader.Failure(offset: 0, message: "a line must be a JSON object, not \(value.typeName)")
                        }
                        fields = object
                    } catch {
                        parseErrors += 1
                        context.metrics.error()
                        switch onError {
                        case .drop:
                            context.metrics.dropped(1)
                            continue
                        case .keepRaw:
                            fields = Fields()
                            fields.append(messageField, .string(String(decoding: event.bytes, as: UTF8.self)))
                            fields.append("error", .string(String(describing: error)))
                        }
                    }
                }
                if let timestampField { fields[timestampField] = .int(event.timestamp) }
                if let hostField { fields[hostField] = .string(host) }
                if let sourceField { fields[sourceField] = .string(event.origin.sourceID) }
                if let pathField, let location = event.origin.location { fields[pathField] = .string(location) }
                if let sequenceField {
                    sequence += 1
                    fields[sequenceField] = .int(sequence)
                }
                records.append(Record(fields: fields, origin: event.origin, timestamp: event.timestamp))
            }
            try await output.send(EventChunk(records, acknowledgements: chunk.acknowledgements))
        }
        if parseErrors > 0 {
            context.logger.warning("lines that did not parse", metadata: ["json.errors": "\(parseErrors)", "json.on_error": "\(onError.rawValue)"])
        }
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
