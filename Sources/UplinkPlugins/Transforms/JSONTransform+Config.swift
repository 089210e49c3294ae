import UplinkCore

extension JSONTransform {
    /// An origin's attributes as an object, sorted by name; whole numbers (`exit_code`, `pid`) as numbers.
    static func attributes(_ attributes: [String: String]) -> Value {
        var object = Fields()
        for (name, text) in attributes.sorted(by: { $0.key < $1.key }) {
            if let number = Int64(text) {
                object.append(name, .int(number))
            } else if text == "true" || text == "false" {
                object.append(name, .bool(text == "true"))
            } else {
                object.append(name, .string(text))
            }
        }
        return .object(object)
    }

    /// Reads and checks the options. Every problem is recorded where it is written, and an option that does not
    /// apply to the chosen mode is an error rather than silently ignored.
    init(config: ConfigReader) {
        self.init()
        mode = config.enumeration("mode", default: .raw)
        messageField = config.string("message_field", default: messageField)
        timestampField = config.string("timestamp_field")
        hostField = config.string("host_field")
        sourceField = config.string("source_field")
        pathField = config.string("path_field")
        attributesField = config.string("attributes_field")
        sequenceField = config.string("sequence_field")
        onError = config.enumeration("on_error", default: .drop)
        maxFields = config.int("max_fields", default: maxFields, range: 1...1_000_000)
        deadLetters = DeadLetterSettings.read(
            from: config, used: onError == .deadLetter, hint: "on_error is not dead_letter")

        let modeOptions: [(String, Mode)] = [
            ("columns", .csv), ("delimiter", .csv), ("pair_delimiter", .kv), ("kv_delimiter", .kv),
            ("pattern", .regex), ("max_match_steps", .regex),
        ]
        if config.contains("max_fields") && mode != .json && mode != .kv {
            config.error("'max_fields' is only used with mode: json or kv (mode is \(mode.rawValue))", at: "max_fields")
        }
        for (option, owner) in modeOptions where owner != mode && config.contains(option) {
            config.error("'\(option)' is only used with mode: \(owner.rawValue) (mode is \(mode.rawValue))", at: option)
        }

        switch mode {
        case .raw, .json:
            break
        case .csv:
            delimiter = Self.singleByte("delimiter", in: config) ?? delimiter
            if delimiter == UInt8(ascii: "\"") { config.error("'delimiter' cannot be a quote", at: "delimiter") }
            readColumns(config)
        case .kv:
            pairDelimiter = Self.singleByte("pair_delimiter", in: config) ?? pairDelimiter
            kvDelimiter = Self.singleByte("kv_delimiter", in: config) ?? kvDelimiter
            if pairDelimiter == kvDelimiter {
                config.error("'pair_delimiter' and 'kv_delimiter' must differ", at: "kv_delimiter")
            }
        case .regex:
            let maxSteps = config.int("max_match_steps", default: 100_000, range: 1...100_000_000)
            if let source = config.string("pattern") {
                do {
                    pattern = try LinePattern(source, maxSteps: UInt32(maxSteps))
                    if pattern!.hasNestedQuantifier {
                        config.warning(
                            "'pattern' repeats a group that itself repeats, like (a+)+: on a line that almost matches it backtracks exponentially; such a line is given up after max_match_steps (\(maxSteps)) and handled by on_error. Rewrite it without the nesting (e.g. (a+)+ as a+)",
                            at: "pattern")
                    }
                } catch {
                    config.error(error.description, at: "pattern")
                }
            } else if !config.contains("pattern") {
                config.error("mode: regex needs 'pattern', a regular expression with named captures such as (?<temperature>[0-9.]+)")
            }
        }
        readTypes(config)
    }

    private mutating func readColumns(_ config: ConfigReader) {
        guard let entries = config.entries("columns") else {
            config.error("mode: csv needs 'columns', the names of the cells in order, e.g. [time:int, temperature:float, status]")
            return
        }
        if entries.isEmpty { config.error("'columns' is empty", at: "columns") }
        var seen = Set<String>()
        for entry in entries {
            // `name:type` in a list, or `name: type` in a mapping.
            let (name, typeName) = entry.value.map { (entry.key, Optional($0)) } ?? FieldType.split(column: entry.key)
            if name == "_" {
                columns.append(Column(nil))
                continue
            }
            guard !name.isEmpty else {
                config.error("'columns': a column needs a name ('_' skips a column)", at: entry)
                continue
            }
            if !seen.insert(name).inserted { config.error("'columns': '\(name)' is listed twice", at: entry) }
            var type = FieldType.string
            if let typeName {
                guard let parsed = Self.fieldType(typeName, in: config, at: entry) else { continue }
                type = parsed
            }
            columns.append(Column(name, type))
        }
    }

    private mutating func readTypes(_ config: ConfigReader) {
        guard let entries = config.entries("types") else { return }
        if mode == .raw {
            config.error("'types' does not apply to mode: raw, whose only field is the line", at: "types")
            return
        }
        let captures = pattern?.captureNames
        for entry in entries {
            guard let typeName = entry.value else {
                config.error("'types': '\(entry.key)' needs a type (int, float, bool, string)", at: entry)
                continue
            }
            guard let type = Self.fieldType(typeName, in: config, at: entry) else { continue }
            if types.contains(where: { $0.name == entry.key }) {
                config.error("'types': '\(entry.key)' is listed twice", at: entry)
                continue
            }
            switch mode {
            case .csv:
                // A column's type lives with the column, so a CSV cell converts exactly once.
                guard let index = columns.firstIndex(where: { $0.name == entry.key }) else {
                    config.error("'types': '\(entry.key)' is not one of the columns", at: entry)
                    continue
                }
                if columns[index].type != .string {
                    config.error("'types': '\(entry.key)' already has a type in 'columns'", at: entry)
                    continue
                }
                columns[index].type = type
            case .regex where captures != nil && !captures!.contains(entry.key):
                config.error(
                    "'types': '\(entry.key)' is not a named capture of 'pattern' (\(captures!.joined(separator: ", ")))",
                    at: entry)
            default:
                types.append(TypedField(entry.key, type))
            }
        }
    }

    private static func fieldType(_ name: String, in config: ConfigReader, at entry: ConfigReader.Entry) -> FieldType? {
        if let type = FieldType(rawValue: name) { return type }
        var message = "unknown type '\(name)' (int, float, bool, string)"
        if let hint = ValueParsing.suggestion(for: name, among: FieldType.allCases.map(\.rawValue)) {
            message += "; did you mean '\(hint)'?"
        }
        config.error(message, at: entry)
        return nil
    }

    /// A one-character (one byte) separator option.
    private static func singleByte(_ option: String, in config: ConfigReader) -> UInt8? {
        guard let text = config.string(option) else { return nil }
        guard text.utf8.count == 1, let byte = text.utf8.first, byte != 0x0A, byte != 0x0D else {
            config.error("'\(option)' must be one character (an ASCII byte other than a newline), got '\(text)'", at: option)
            return nil
        }
        return byte
    }
}
