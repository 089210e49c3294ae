import UplinkCore

extension ThingModelTransform {
    /// Why a record cannot be posted; it describes itself as that reason, for people.
    struct Rejected: Error, CustomStringConvertible {
        var reason: String

        var description: String { reason }
    }

    /// Encodes what follows the RequestID, `"Property":{…}}` or `"Identifier":…}`, into `buffer` (and a property
    /// post's identifiers into `identifiers`); returns why the record cannot be posted instead. The RequestID is
    /// taken only for a record that can be posted, so IDs have no gaps caused by rejects.
    func encodeTail(
        _ record: Record, into buffer: inout [UInt8], identifiers: inout [Value], names: inout EncodedNames
    ) -> String? {
        do {
            let time = try sampleTime(of: record)
            switch kind {
            case .property:
                try encodeProperties(record, time: time, into: &buffer, identifiers: &identifiers, names: &names)
            case .event: try encodeEvent(record, time: time, into: &buffer)
            }
            return nil
        } catch {
            return error.reason
        }
    }

    private func sampleTime(of record: Record) throws(Rejected) -> Int64? {
        guard includeTime else { return nil }
        guard let timeField else { return record.timestamp }
        switch record.fields[timeField] {
        case .int(let millis):
            return millis
        case .double(let millis) where millis.isFinite && abs(millis) < 9e18:
            return Int64(millis.rounded())
        case .string(let text) where Int64(text) != nil:
            return Int64(text)!
        case nil:
            throw Rejected(reason: "the record has no '\(timeField)' field (time_field)")
        case .some(let value):
            throw Rejected(reason: "'\(timeField)' is \(value.typeName) \(value.jsonText.prefix(40)), not a Unix time in ms")
        }
    }

    /// Whether a field is left out when every field is taken: it already says the time or the event's name.
    private func isMetadata(_ name: String) -> Bool {
        name == timeField || name == identifierField
    }

    /// Checks one property or output: a null is left out (the thing model has no null), a name from a record is
    /// checked as an identifier (names from the config were checked at validation), strings are bounded.
    private func accepts(_ name: String, _ value: Value) throws(Rejected) -> Bool {
        if case .null = value { return false }
        if selection.entries == nil, let problem = Self.identifierProblem(name) { throw Rejected(reason: problem) }
        if case .string(let text) = value, text.utf8.count > Self.maxStringBytes {
            throw Rejected(reason: "'\(name)' is a string of \(text.utf8.count) bytes; the thing model allows \(Self.maxStringBytes)")
        }
        return true
    }

    /// `"Property":{`, where a post's entries start after its RequestID.
    static let propertyOpening = Array(#""Property":{"#.utf8)
    static let timeKey = Array(#","Time":"#.utf8)

    /// Property names met in earlier records, each checked once and kept encoded as `"name":{"Value":`. Records
    /// of one source carry the same names in the same order, so a name is looked for at its own position first,
    /// and found there by an O(1) comparison (the names share storage, or are small strings).
    struct EncodedNames {
        private var entries: [(name: String, encoded: [UInt8])] = []

        /// The position of `name`'s entry, checking and encoding it the first time (nil: not an identifier).
        mutating func position(of name: String, near position: Int, check: Bool) -> Int? {
            if position < entries.count && entries[position].name == name { return position }
            if let found = entries.firstIndex(where: { $0.name == name }) { return found }
            if check && !ThingModelTransform.isIdentifier(name) { return nil }
            var encoded: [UInt8] = []
            JSONWriter.appendString(name, to: &encoded)
            encoded.append(contentsOf: #":{"Value":"#.utf8)
            // Bounded: a source whose names keep changing must not grow this without limit.
            if entries.count >= 256 { entries.removeAll(keepingCapacity: true) }
            entries.append((name, encoded))
            return entries.count - 1
        }

        func append(_ position: Int, to buffer: inout [UInt8]) {
            buffer.append(contentsOf: entries[position].encoded)
        }
    }

    private func encodeProperties(
        _ record: Record, time: Int64?, into buffer: inout [UInt8], identifiers: inout [Value],
        names: inout EncodedNames
    ) throws(Rejected) {
        buffer.append(contentsOf: Self.propertyOpening)
        // The Time of every property is the same: its digits are written once and copied.
        var timeDigits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var timeLength = 0
        if let time {
            withUnsafeMutableBytes(of: &timeDigits) { timeLength = JSONWriter.writeInteger(time, into: $0) }
        }
        var count = 0
        // The closures below capture these locals, not `self` (capturing it copies the whole stage per record).
        let timeField = self.timeField
        let identifierField = self.identifierField
        let checkNames = selection.entries == nil
        do {
            try selection.forEach(in: record.fields, excluding: { $0 == timeField || $0 == identifierField }) {
                name, value in
                if case .null = value { return }
                // Names from the config were checked when it was validated; names from records are checked here.
                guard let position = names.position(of: name, near: count, check: checkNames) else {
                    throw Rejected(reason: Self.identifierProblem(name) ?? "'\(name)' is not a thing-model identifier")
                }
                if case .string(let text) = value, text.utf8.count > Self.maxStringBytes {
                    throw Rejected(reason: "'\(name)' is a string of \(text.utf8.count) bytes; the thing model allows \(Self.maxStringBytes)")
                }
                if count > 0 { buffer.append(UInt8(ascii: ",")) }
                count += 1
                identifiers.append(.string(name))
                names.append(position, to: &buffer)
                value.appendJSON(to: &buffer)
                if time != nil {
                    buffer.append(contentsOf: Self.timeKey)
                    withUnsafeBytes(of: &timeDigits) { digits in
                        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: digits[(24 - timeLength)...]))
                    }
                }
                buffer.append(UInt8(ascii: "}"))
            }
        } catch let error as Rejected {
            throw error
        } catch {
            throw Rejected(reason: "\(error)")
        }
        if count == 0 { throw Rejected(reason: "the record has no property to post") }
        if count > Self.maxProperties {
            throw Rejected(reason: "the record has \(count) properties; the thing model allows \(Self.maxProperties)")
        }
        buffer.append(UInt8(ascii: "}"))
        buffer.append(UInt8(ascii: "}"))
    }

    private func encodeEvent(_ record: Record, time: Int64?, into buffer: inout [UInt8]) throws(Rejected) {
        let name: String
        if let identifier {
            name = identifier
        } else {
            let field = identifierField ?? ""
            guard case .string(let value)? = record.fields[field] else {
                throw Rejected(reason: "the record has no string field '\(field)' naming its event (identifier_field)")
            }
            if let problem = Self.identifierProblem(value) { throw Rejected(reason: "event identifier \(problem)") }
            name = value
        }
        buffer.append(contentsOf: #""Identifier":"#.utf8)
        JSONWriter.appendString(name, to: &buffer)
        buffer.append(contentsOf: #","Output":{"#.utf8)
        var count = 0
        do {
            try selection.forEach(in: record.fields, excluding: isMetadata) { name, value in
                guard try accepts(name, value) else { return }
                count += 1
                if count > Self.maxOutputs {
                    throw Rejected(reason: "the event has more than \(Self.maxOutputs) outputs; the thing model allows \(Self.maxOutputs)")
                }
                if count > 1 { buffer.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(name, to: &buffer)
                buffer.append(UInt8(ascii: ":"))
                value.appendJSON(to: &buffer)
            }
        } catch let error as Rejected {
            throw error
        } catch {
            throw Rejected(reason: "\(error)")
        }
        buffer.append(UInt8(ascii: "}"))
        if let time {
            buffer.append(contentsOf: #","Time":"#.utf8)
            JSONWriter.appendInteger(time, to: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }
}

extension ThingModelTransform {
    /// Names of the ``Message/metadata`` a property post carries, so `batch` merges posts without parsing them.
    enum Metadata {
        /// The post's RequestID (a string).
        static let requestID = "thing_model.request_id"
        /// The identifiers of its properties, in order (an array of strings).
        static let properties = "thing_model.properties"
        /// The offset in the body where the entries of `Property` start; they end 2 bytes (`}}`) before the end.
        static let entriesStart = "thing_model.entries_start"
    }
}
