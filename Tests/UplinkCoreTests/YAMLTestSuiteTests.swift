import Foundation
import Testing
import UplinkCore
import UplinkYAML

/// A subset of yaml-test-suite (Tests/Fixtures/yaml-test-suite): aliases and tabs, the parts of the YAML loader
/// that Uplink changes or explains.
@Suite struct YAMLTestSuiteTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/yaml-test-suite/src").path

    /// The suite shows whitespace with markers: `—»` (any number of `—`, then `»`) is a tab, `␣` a space, `∎`
    /// ends a text without its final newline, `↵` marks a line end, `←` a carriage return.
    static func unmarked(_ text: String) -> String {
        var output = ""
        var pendingDashes = ""
        for character in text {
            switch character {
            case "—": pendingDashes.append(character)
            case "»":
                pendingDashes = ""
                output.append("\t")
            default:
                output += pendingDashes
                pendingDashes = ""
                switch character {
                case "␣": output.append(" ")
                case "↵": break
                case "←": output.append("\r")
                default: output.append(character)
                }
            }
        }
        output += pendingDashes
        if output.hasSuffix("∎\n") { output.removeLast(2) }
        return output
    }

    struct Case: CustomStringConvertible {
        var id: String
        var yaml: String
        var json: String?
        var fails: Bool
        var description: String { id }
    }

    static func load(_ id: String) throws -> Case {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/\(id).yaml")))
        let root = try YAMLParser.parse(bytes, file: id)
        let first = try #require(root.sequence?.first)
        return Case(
            id: id, yaml: unmarked(try #require(first["yaml"]?.scalar)), json: first["json"]?.scalar,
            fails: first["fail"]?.scalar == "true")
    }

    @Test(arguments: ["3GZX", "7BUB", "E76Z", "V55R", "J3BT"])
    func validCasesGiveTheSuitesJSON(_ id: String) throws {
        let testCase = try Self.load(id)
        #expect(!testCase.fails)
        let node = try YAMLParser.parse(Array(testCase.yaml.utf8), file: id)
        let expected = try JSONReader.parse(Array(try #require(testCase.json).utf8))
        #expect(Value(yaml: node) == expected, "\(id)")
    }

    @Test(arguments: ["SR86", "4EJS"])
    func invalidCasesAreRefused(_ id: String) throws {
        let testCase = try Self.load(id)
        #expect(testCase.fails)
        #expect(throws: YAMLError.self) { try YAMLParser.parse(Array(testCase.yaml.utf8), file: id) }
    }

    @Test func tabsAsIndentationAreExplained() throws {
        let testCase = try Self.load("4EJS")
        do {
            _ = try YAMLParser.parse(Array(testCase.yaml.utf8), file: "4EJS")
            Issue.record("4EJS parsed")
        } catch {
            #expect(error.message.contains("tabs are not allowed for indentation in YAML; use spaces"), "\(error)")
            #expect(error.mark == YAMLMark(line: 3, column: 1))
        }
    }
}
