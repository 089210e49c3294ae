import Foundation
import Testing
import UplinkCore

/// JSONTestSuite's parsing files (Tests/Fixtures/JSONTestSuite), each wrapped in an object as the `json`
/// transform sees a line: `y_` accepted, `n_` refused, `i_` as pinned below.
@Suite struct JSONTestSuiteTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/JSONTestSuite/test_parsing").path

    static func files(_ prefix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".json") }.sorted()
    }

    static func wrapped(_ name: String) throws -> [UInt8] {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
        return Array(#"{"v":"#.utf8) + bytes + [UInt8(ascii: "}")]
    }

    /// What the reader does with a document: refuses it, accepts it as it is, or accepts it repaired.
    enum Outcome: Equatable, CustomStringConvertible {
        case accepted, refused, repaired(JSONReader.Repair.Kind)

        var description: String {
            switch self {
            case .accepted: return "accepted"
            case .refused: return "refused"
            case .repaired(let kind): return "repaired (\(kind))"
            }
        }
    }

    static func outcome(_ bytes: [UInt8]) -> Outcome {
        var repairs: [JSONReader.Repair] = []
        guard (try? JSONReader.parse(bytes, repairs: &repairs)) != nil else { return .refused }
        return repairs.first.map { .repaired($0.kind) } ?? .accepted
    }

    @Test func theFilesAreThere() {
        #expect(Self.files("y_").count == 95)
        #expect(Self.files("n_").count == 186)
        #expect(Self.files("i_").count == 35)
    }

    @Test(arguments: files("y_"))
    func acceptsWhatJSONAllows(_ name: String) throws {
        let bytes = try Self.wrapped(name)
        #expect(Self.outcome(bytes) == .accepted, "\(name)")
        // What is read is written back as JSON that reads the same.
        let value = try JSONReader.parse(bytes)
        #expect(try JSONReader.parse(Array(value.jsonText.utf8)) == value, "\(name)")
    }

    @Test(arguments: files("n_"))
    func refusesWhatJSONForbids(_ name: String) throws {
        #expect(Self.outcome(try Self.wrapped(name)) == .refused, "\(name)")
    }

    /// The implementation-defined cases: numbers a double or Int64 cannot hold are kept as text (a repair, which
    /// the json transform's on_error decides about), invalid UTF-8 is a repair too, lone surrogates become U+FFFD,
    /// UTF-16 and BOMs are not JSON text, nesting of 500 is within the limit (128 levels is not: refused).
    static let implementationDefined: [String: Outcome] = [
        "i_number_double_huge_neg_exp.json": .repaired(.numberOutOfRange),
        "i_number_huge_exp.json": .repaired(.numberOutOfRange),
        "i_number_neg_int_huge_exp.json": .repaired(.numberOutOfRange),
        "i_number_pos_double_huge_exp.json": .repaired(.numberOutOfRange),
        "i_number_real_neg_overflow.json": .repaired(.numberOutOfRange),
        "i_number_real_pos_overflow.json": .repaired(.numberOutOfRange),
        "i_number_real_underflow.json": .repaired(.numberOutOfRange),
        "i_number_too_big_neg_int.json": .repaired(.numberOutOfRange),
        "i_number_too_big_pos_int.json": .repaired(.numberOutOfRange),
        "i_number_very_big_negative_int.json": .repaired(.numberOutOfRange),
        "i_object_key_lone_2nd_surrogate.json": .accepted,
        "i_string_1st_surrogate_but_2nd_missing.json": .accepted,
        "i_string_1st_valid_surrogate_2nd_invalid.json": .accepted,
        "i_string_UTF-16LE_with_BOM.json": .refused,
        "i_string_UTF-8_invalid_sequence.json": .repaired(.invalidUTF8),
        "i_string_UTF8_surrogate_U+D800.json": .repaired(.invalidUTF8),
        "i_string_incomplete_surrogate_and_escape_valid.json": .accepted,
        "i_string_incomplete_surrogate_pair.json": .accepted,
        "i_string_incomplete_surrogates_escape_valid.json": .accepted,
        "i_string_invalid_lonely_surrogate.json": .accepted,
        "i_string_invalid_surrogate.json": .accepted,
        "i_string_invalid_utf-8.json": .repaired(.invalidUTF8),
        "i_string_inverted_surrogates_U+1D11E.json": .accepted,
        "i_string_iso_latin_1.json": .repaired(.invalidUTF8),
        "i_string_lone_second_surrogate.json": .accepted,
        "i_string_lone_utf8_continuation_byte.json": .repaired(.invalidUTF8),
        "i_string_not_in_unicode_range.json": .repaired(.invalidUTF8),
        "i_string_overlong_sequence_2_bytes.json": .repaired(.invalidUTF8),
        "i_string_overlong_sequence_6_bytes.json": .repaired(.invalidUTF8),
        "i_string_overlong_sequence_6_bytes_null.json": .repaired(.invalidUTF8),
        "i_string_truncated-utf-8.json": .repaired(.invalidUTF8),
        "i_string_utf16BE_no_BOM.json": .refused,
        "i_string_utf16LE_no_BOM.json": .refused,
        "i_structure_500_nested_arrays.json": .refused,
        "i_structure_UTF-8_BOM_empty_object.json": .refused,
    ]

    @Test(arguments: files("i_"))
    func implementationDefinedCasesAreAsDocumented(_ name: String) throws {
        let found = Self.outcome(try Self.wrapped(name))
        #expect(found == Self.implementationDefined[name], "\(name): \(found)")
    }
}
