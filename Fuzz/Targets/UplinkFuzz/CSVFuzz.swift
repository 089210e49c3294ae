@testable import UplinkCore
@testable import UplinkPlugins

/// The `json` transform's CSV mode. Input: a delimiter choice, a column count, then the line.
///
/// Properties: no crash; the cells hold no more bytes than the line; a line without quotes splits exactly at
/// its delimiters; cells written back with RFC 4180 quoting split into the same cells; a parsed record writes
/// as JSON that reads back.
enum CSVFuzz {
    static let delimiters: [UInt8] = [UInt8(ascii: ","), UInt8(ascii: ";"), 0x09, UInt8(ascii: "|"), UInt8(ascii: " ")]
    static let types: [FieldType] = [.string, .int, .float, .bool]

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var input = FuzzInput(data)
        let delimiter = input.pick(delimiters)
        let columnCount = input.int(in: 1...8)
        let line = input.rest
        let quote = UInt8(ascii: "\"")

        var cells: [ArraySlice<UInt8>] = []
        let problem = JSONTransform.splitCSV(line, delimiter: delimiter, into: &cells)
        if !line.contains(quote) {
            require(problem == nil, "a line without quotes is refused: \(problem ?? "")")
            let expected = line.split(separator: delimiter, omittingEmptySubsequences: false)
            require(
                cells.count == expected.count && zip(cells, expected).allSatisfy { $0.elementsEqual($1) },
                "a line without quotes split into other cells")
        }
        if problem == nil {
            require(cells.reduce(0) { $0 + $1.count } <= line.count, "the cells hold more bytes than the line")
            var encoded: [UInt8] = []
            for (index, cell) in cells.enumerated() {
                if index > 0 { encoded.append(delimiter) }
                encoded.append(quote)
                for byte in cell {
                    if byte == quote { encoded.append(quote) }
                    encoded.append(byte)
                }
                encoded.append(quote)
            }
            var again: [ArraySlice<UInt8>] = []
            let reparse = JSONTransform.splitCSV(encoded[...], delimiter: delimiter, into: &again)
            require(reparse == nil, "quoted cells are refused: \(reparse ?? "")")
            require(
                again.count == cells.count && zip(again, cells).allSatisfy { $0.elementsEqual($1) },
                "quoted cells split into other cells")
        }

        var transform = JSONTransform()
        transform.mode = .csv
        transform.delimiter = delimiter
        transform.columns = (0..<columnCount).map { index in
            index == 3 ? JSONTransform.Column(nil) : JSONTransform.Column("c\(index)", types[index % types.count])
        }
        TransformCheck.parse(transform, line)
    }
}

/// What every `json` mode must do with whatever it parsed.
enum TransformCheck {
    static func parse(_ transform: JSONTransform, _ line: ArraySlice<UInt8>) {
        var scratch: JSONTransform.ParseScratch
        do {
            scratch = try JSONTransform.ParseScratch(pattern: transform.pattern)
        } catch {
            require(false, "a checked pattern does not compile: \(error)")
            return
        }
        var fields = Fields()
        let problem = transform.parse(line, into: &fields, scratch: &scratch)
        if case .unparsable? = problem { return }
        var written: [UInt8] = []
        fields.appendJSON(to: &written)
        guard case .object(let again)? = try? JSONReader.parse(written) else {
            require(false, "a parsed record does not write as a JSON object: \(JSONFuzz.quote(written))")
            return
        }
        require(again.count == fields.count, "a record's fields changed through JSON")
        let names = Set(fields.map(\.name))
        require(names.count == fields.count, "a record has two fields of the same name")
    }
}
