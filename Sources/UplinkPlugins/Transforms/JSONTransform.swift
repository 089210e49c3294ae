#if canImport(Glibc)
import Glibc
#endif
import Logging
import UplinkCore

/// `json`: turns raw lines into structured records.
///
/// Parse modes (`mode`):
/// - `raw`: the line becomes one string field, `message_field` (invalid UTF-8 becomes U+FFFD, never an error);
/// - `json`: the line is a JSON object;
/// - `csv`: the line's cells are the named `columns`, each `name` or `name:type` (`_` skips a cell), split at
///   `delimiter` with RFC 4180 quoting;
/// - `kv`: `key=value` pairs separated by spaces (`pair_delimiter`, `kv_delimiter`), values optionally quoted;
/// - `regex`: the named captures of `pattern` (PCRE2), each line's match bounded by `max_match_steps`.
///
/// json mode reads RFC 8259 exactly (see ``JSONReader``). What valid JSON a record cannot hold exactly (an
/// integer beyond 64 bits, a number beyond a double, invalid UTF-8 in a string) is a value that does not convert:
/// `keep_raw` keeps the number's text as a string (invalid UTF-8 becomes U+FFFD), the other policies reject the
/// line; either way it is counted. In csv mode a quoted cell ends on its line: a quoted newline is refused with
/// its reason, never read as two wrong records. `max_fields` (1000) bounds a json or kv line's fields.
///
/// `types` converts fields to `int`, `float`, `bool` or `string`. Optional fields add the read time (Unix ms),
/// host, source id, path or device, and a sequence number. A line that does not parse, or a value that does not
/// convert, is handled by `on_error` (`drop`, `keep_raw`, `dead_letter`), always counted, never a crash. Records
/// encode to valid JSON whatever bytes the line held.
public struct JSONTransform: InlineTransform {
    public typealias Input = RawEvent
    public typealias Output = Record

    public enum Mode: String, Sendable, CaseIterable { case raw, json, csv, kv, regex }

    public enum ErrorPolicy: String, Sendable, CaseIterable {
        /// Drop the line, counted.
        case drop
        /// Keep what did not convert as text: a line that does not parse becomes a `message_field` record with
        /// an `error` field; a value that does not convert stays the original string.
        case keepRaw = "keep_raw"
        /// Write the line to the dead-letter file with the reason, counted.
        case deadLetter = "dead_letter"
    }

    /// A CSV column: its field name (nil: the cell is skipped) and type.
    public struct Column: Sendable, Equatable {
        public var name: String?
        public var type: FieldType

        public init(_ name: String?, _ type: FieldType = .string) {
            self.name = name
            self.type = type
        }
    }

    /// A field converted to a type after parsing (`types:`).
    public struct TypedField: Sendable, Equatable {
        public var name: String
        public var type: FieldType

        public init(_ name: String, _ type: FieldType) {
            self.name = name
            self.type = type
        }
    }

    public static let descriptor = PluginDescriptor(
        type: "json", role: .transform,
        summary: "Turns raw lines into records: the line as a field, or parsed as JSON, CSV, key=value pairs or a regex; types values.",
        options: [
            OptionSpec("mode", .enumeration(Mode.allCases.map(\.rawValue)), default: "raw", "how a line is parsed: raw (the line is `message_field`), json (an object), csv (`columns`), kv (key=value pairs), regex (named captures of `pattern`)"),
            OptionSpec("message_field", .string, default: "message", "field that holds the line in raw mode (and with on_error: keep_raw)"),
            OptionSpec("columns", .list(of: "column names"), "csv: the column names in order, each `name` or `name:type` (int, float, bool, string); `_` skips a column"),
            OptionSpec("delimiter", .string, default: ",", "csv: the one-character cell separator (\"\\t\" for TSV)"),
            OptionSpec("pair_delimiter", .string, default: "' '", "kv: the one-character separator between pairs (a space: any run of spaces and tabs)"),
            OptionSpec("kv_delimiter", .string, default: "=", "kv: the one-character separator between a key and its value"),
            OptionSpec("pattern", .string, "regex: a regular expression (PCRE2, Perl syntax) whose named captures (?<name>…) become fields"),
            OptionSpec("max_match_steps", .int, default: "100000", "regex: the most backtracking steps the pattern may take on one line; a line that needs more is handled by on_error (bounds the CPU a line can cost)"),
            OptionSpec("max_fields", .int, default: "1000", "json, kv: a line with more fields than this is handled by on_error (bounds the work and memory one line can cost)"),
            OptionSpec("types", .map(key: "field name", value: "type (int, float, bool, string)"), "convert fields: `field: int | float | bool | string`; a value that does not convert is handled by on_error"),
            OptionSpec("timestamp_field", .string, "add the read time (Unix ms) under this name"),
            OptionSpec("host_field", .string, "add the host name under this name"),
            OptionSpec("source_field", .string, "add the source component id under this name"),
            OptionSpec("path_field", .string, "add the file path or device under this name"),
            OptionSpec("attributes_field", .string, "add what the source tells about the event's origin as an object under this name: an exec run's exit_code (or signal), pid and timed_out"),
            OptionSpec("sequence_field", .string, "add a per-component sequence number under this name"),
            OptionSpec("on_error", .enumeration(ErrorPolicy.allCases.map(\.rawValue)), default: "drop", "a line that does not parse or a value that does not convert: drop it, keep_raw (keep the text), or dead_letter it; always counted"),
        ] + DeadLetterSettings.options,
        accepts: [.raw], output: .kind(.record)
    ) { context in
        .transform(JSONTransform(config: context.config))
    }

    public var mode: Mode = .raw
    public var messageField = "message"
    public var columns: [Column] = []
    public var delimiter = UInt8(ascii: ",")
    public var pairDelimiter = UInt8(ascii: " ")
    public var kvDelimiter = UInt8(ascii: "=")
    /// regex mode: the pattern and the names of its captures (each run compiles its own matcher).
    public var pattern: LinePattern?
    public var types: [TypedField] = []
    /// json and kv modes: the most fields a line may have (at the top level).
    public var maxFields = 1000
    public var timestampField: String?
    public var hostField: String?
    public var sourceField: String?
    public var pathField: String?
    public var attributesField: String?
    public var sequenceField: String?
    public var onError: ErrorPolicy = .drop
    var deadLetters = DeadLetterSettings()

    public init() {}

    /// Room reserved in each record beyond the fields `json` itself writes: a `remap` `set` of a new field (or two)
    /// downstream then fills it instead of reallocating the record's fields (one malloc per record otherwise). Two
    /// fields' room is about 80 bytes per record while it is in flight.
    static let spareFields = 2

    public func makeProcessor(context: ComponentContext) throws -> Processor {
        try Processor(stage: self, context: context)
    }

    /// One run's state: the sequence number, what it rejected, the parsing scratch (and compiled regex).
    public final class Processor: ChunkProcessor {
        let stage: JSONTransform
        let host: String
        var sequence: Int64 = 0
        var rejections: Rejections
        /// Nil only while a chunk is being parsed (taken out, so its cells' storage stays uniquely referenced).
        var scratch: ParseScratch?
        /// The fields a record gets, plus ``spareFields``, so the fields' storage is allocated once at its final size.
        let reservedFields: Int

        init(stage: JSONTransform, context: ComponentContext) throws {
            self.stage = stage
            host = stage.hostField == nil ? "" : JSONTransform.hostName()
            rejections = Rejections(
                context: context, deadLetters: stage.onError == .deadLetter ? stage.deadLetters.file(for: context) : nil)
            scratch = try ParseScratch(pattern: stage.pattern)
            let optionalFields = [
                stage.timestampField, stage.hostField, stage.sourceField, stage.pathField, stage.attributesField,
                stage.sequenceField,
            ].count { $0 != nil }
            switch stage.mode {
            case .raw: reservedFields = 1 + optionalFields + JSONTransform.spareFields
            case .csv: reservedFields = stage.columns.count + optionalFields + JSONTransform.spareFields
            case .kv, .regex:
                reservedFields = max(4, stage.pattern?.captureNames.count ?? 0) + optionalFields + JSONTransform.spareFields
            case .json: reservedFields = 0
            }
        }

        public func finish() { rejections.finish() }

        public func process(_ chunk: consuming EventChunk<RawEvent>) -> EventChunk<Record>? {
            // Locals for the loop: passing the class's properties inout would check exclusive access per line.
            var scratch = self.scratch.take()!
            defer { self.scratch = scratch }
            var rejections = self.rejections
            defer { self.rejections = rejections }
            var sequence = self.sequence
            defer { self.sequence = sequence }
            let onError = stage.onError
            var records: [Record] = []
            records.reserveCapacity(chunk.count)
            for event in chunk.events {
                var fields = Fields()
                // json mode replaces the fields with the parsed object: reserving would allocate for nothing.
                if reservedFields > 0 { fields.reserveCapacity(reservedFields) }
                switch stage.parse(event.bytes, into: &fields, scratch: &scratch) {
                case nil:
                    break
                case .unconverted(let reason) where onError == .keepRaw:
                    // The record goes on with the original text in place of the value.
                    rejections.count(reason: reason)
                case .unparsable(let reason) where onError == .keepRaw:
                    rejections.count(reason: reason)
                    fields = Fields()
                    fields.append(stage.messageField, .string(String(decoding: event.bytes, as: UTF8.self)))
                    fields.append("error", .string(reason))
                case .unparsable(let reason), .unconverted(let reason):
                    rejections.reject(event.bytes, topic: nil, reason: reason, deadLetter: onError == .deadLetter)
                    continue
                }
                if let timestampField = stage.timestampField { fields[timestampField] = .int(event.timestamp) }
                if let hostField = stage.hostField { fields[hostField] = .string(host) }
                if let sourceField = stage.sourceField { fields[sourceField] = .string(event.origin.sourceID) }
                if let pathField = stage.pathField, let location = event.origin.location {
                    fields[pathField] = .string(location)
                }
                if let attributesField = stage.attributesField, !event.origin.attributes.isEmpty {
                    fields[attributesField] = JSONTransform.attributes(event.origin.attributes)
                }
                if let sequenceField = stage.sequenceField {
                    sequence += 1
                    fields[sequenceField] = .int(sequence)
                }
                records.append(
                    Record(fields: fields, origin: event.origin, timestamp: event.timestamp, offset: event.offset))
            }
            rejections.settle(chunk.acknowledgements)
            if records.isEmpty {
                // Every line was dropped or dead-lettered on purpose: that is their final answer, and a source
                // waiting for it must not take them for lost.
                chunk.acknowledgements.resolve(.delivered)
                return nil
            }
            // Moved, not copied: a fused stage downstream (``InlineEdge``) changes the records where they are only
            // if nothing else (this variable) still holds their array.
            return EventChunk(consume records, acknowledgements: chunk.acknowledgements)
        }
    }

    /// Why a line did not become a record as configured.
    enum Problem: Equatable {
        /// The line does not parse in the mode.
        case unparsable(String)
        /// It parsed, but a value does not convert to its type; the field holds the original text.
        case unconverted(String)
    }

    /// What parsing keeps from line to line: CSV cells' storage and the compiled regex (Swift's `Regex` is not
    /// `Sendable`, so each run compiles its own from ``LinePattern``).
    struct ParseScratch {
        var cells: [ArraySlice<UInt8>] = []
        let matcher: LinePattern.Matcher?

        init(pattern: LinePattern?) throws {
            matcher = try pattern?.matcher()
        }
    }

    /// Parses `line` into `fields` and converts typed fields.
    func parse(_ line: ArraySlice<UInt8>, into fields: inout Fields, scratch: inout ParseScratch) -> Problem? {
        var conversionProblem: String?
        switch mode {
        case .raw:
            fields.append(messageField, .string(String(decoding: line, as: UTF8.self)))
            return nil
        case .json:
            var repairs: [JSONReader.Repair] = []
            do {
                let value = try JSONReader.parse(line, repairs: &repairs)
                guard case .object(let object) = value else {
                    return .unparsable("a line must be a JSON object, not \(value.typeName)")
                }
                fields = object
            } catch {
                return .unparsable(String(describing: error))
            }
            if fields.count > maxFields {
                return .unparsable("the line has \(fields.count) fields, more than max_fields (\(maxFields))")
            }
            if let first = repairs.first {
                conversionProblem = "the JSON value \(first)" + (repairs.count > 1 ? " (and \(repairs.count - 1) more)" : "")
            }
        case .csv:
            if let problem = Self.splitCSV(line, delimiter: delimiter, into: &scratch.cells) {
                return .unparsable(problem)
            }
            guard scratch.cells.count == columns.count else {
                return .unparsable("expected \(columns.count) columns, got \(scratch.cells.count)")
            }
            for (column, cell) in zip(columns, scratch.cells) {
                guard let name = column.name else { continue }
                if let value = column.type.convert(text: cell) {
                    fields.append(name, value)
                } else {
                    conversionProblem = conversionProblem ?? Self.conversionProblem(name, cell, column.type)
                    fields.append(name, .string(String(decoding: cell, as: UTF8.self)))
                }
            }
        case .kv:
            if let problem = Self.splitPairs(
                line, pairDelimiter: pairDelimiter, kvDelimiter: kvDelimiter, maxFields: maxFields, into: &fields)
            {
                return .unparsable(problem)
            }
        case .regex:
            guard let matcher = scratch.matcher else { return .unparsable("the line does not match the pattern") }
            switch matcher.match(line, into: &fields) {
            case .matched: break
            case .noMatch: return .unparsable("the line does not match the pattern")
            case .overBudget:
                fields = Fields()
                return .unparsable(
                    "the pattern needed more than max_match_steps (\(matcher.regex.maxSteps)) steps on this line: it backtracks too much (nested quantifiers such as (a+)+?)")
            }
        }
        for typed in types {
            guard let value = fields[typed.name] else { continue }
            if let converted = typed.type.convert(value) {
                fields[typed.name] = converted
            } else {
                conversionProblem = conversionProblem ?? Self.conversionProblem(typed.name, value, typed.type)
            }
        }
        return conversionProblem.map(Problem.unconverted)
    }

    static func conversionProblem(_ name: String, _ text: some Collection<UInt8>, _ type: FieldType) -> String {
        "field '\(name)': '\(String(decoding: text.prefix(64), as: UTF8.self))' is not \(type == .int ? "an" : "a") \(type.rawValue)"
    }

    static func conversionProblem(_ name: String, _ value: Value, _ type: FieldType) -> String {
        if case .string(let text) = value { return conversionProblem(name, text.utf8, type) }
        return "field '\(name)': \(value.typeName) \(String(value.jsonText.prefix(64))) is not \(type == .int ? "an" : "a") \(type.rawValue)"
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
