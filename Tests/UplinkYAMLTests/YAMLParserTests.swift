import Testing
import UplinkYAML

@Suite struct YAMLParserTests {
    @Test func keepsLineAndColumnForEveryNode() throws {
        let root = try YAMLParser.parse(
            """
            sources:
              probe:
                type: stdin
            list: [a, b]
            """)
        let probe = try #require(root["sources"]?["probe"])
        #expect(probe.mark == YAMLMark(line: 3, column: 5))
        #expect(probe["type"]?.scalar == "stdin")
        #expect(probe["type"]?.mark == YAMLMark(line: 3, column: 11))
        let items = try #require(root["list"]?.sequence)
        #expect(items.map(\.scalar) == ["a", "b"])
        #expect(items[1].mark == YAMLMark(line: 4, column: 11))
    }

    @Test func resolvesAnchorsAliasesAndMergeKeys() throws {
        let root = try YAMLParser.parse(
            """
            defaults: &defaults
              baud: 9600
              parity: none
            a:
              <<: *defaults
              baud: 115200
            b: *defaults
            """)
        #expect(root["a"]?["baud"]?.scalar == "115200")
        #expect(root["a"]?["parity"]?.scalar == "none")
        #expect(root["b"]?["baud"]?.scalar == "9600")
        // An alias reports where it is used, so errors point at the use site.
        #expect(root["b"]?.mark.line == 7)
    }

    @Test func multiLineStrings() throws {
        let root = try YAMLParser.parse(
            """
            literal: |
              line one
              line two
            folded: >
              folded
              text
            """)
        #expect(root["literal"]?.scalar == "line one\nline two\n")
        #expect(root["folded"]?.scalar == "folded text")
        if case .scalar(_, let style) = root["literal"]!.kind { #expect(style == .literal) }
    }

    @Test func syntaxErrorsNameFileLineAndColumn() {
        do {
            _ = try YAMLParser.parse(Array("a: [1, 2\nb: 3\n".utf8), file: "bad.yaml")
            Issue.record("expected a parse error")
        } catch {
            #expect(error.file == "bad.yaml")
            #expect(error.mark.line >= 1)
            #expect(error.description.hasPrefix("bad.yaml:"))
        }
    }

    @Test func unknownAliasIsAnError() {
        #expect(throws: YAMLError.self) { try YAMLParser.parse("a: *nowhere") }
    }

    @Test func emptyDocumentIsAnEmptyMapping() throws {
        let root = try YAMLParser.parse("")
        #expect(root.mapping?.isEmpty == true)
    }

    @Test func quotedScalarsKeepTheirStyle() throws {
        let root = try YAMLParser.parse("a: '5'\nb: 5\nc: ~\n")
        if case .scalar(let value, let style) = root["a"]!.kind {
            #expect(value == "5")
            #expect(style == .singleQuoted)
        }
        #expect(root["c"]?.isNull == true)
        #expect(root["a"]?.isNull == false)
    }
}

@Suite struct InterpolationTests {
    let interpolator = Interpolator(environment: ["HOST": "board-7", "EMPTY": "", "PORT": "8443"])

    @Test(arguments: [
        ("${HOST}", "board-7"),
        ("https://${HOST}:${PORT}/x", "https://board-7:8443/x"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("cost: $$5", "cost: $5"),
        ("plain $ sign", "plain $ sign"),
    ])
    func expands(input: String, expected: String) throws {
        #expect(try interpolator.expand(input) == expected)
    }

    @Test func requiredVariableErrorCarriesTheMessage() {
        do {
            _ = try interpolator.expand("${SECRET:?set SECRET to the device secret}")
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("SECRET"))
            #expect(error.message.contains("set SECRET to the device secret"))
        }
    }

    @Test func unsetVariableWithoutDefaultIsAnError() {
        #expect(throws: Interpolator.Failure.self) { try interpolator.expand("${NOPE}") }
    }

    @Test func treeInterpolationReportsLocations() throws {
        var root = try YAMLParser.parse("a: ${HOST}\nb:\n  - ${NOPE}\n${HOST}: key-untouched\n")
        var errors: [YAMLError] = []
        interpolator.interpolate(&root, file: "x.yaml", errors: &errors)
        #expect(root["a"]?.scalar == "board-7")
        #expect(root["${HOST}"]?.scalar == "key-untouched")
        #expect(errors.count == 1)
        #expect(errors.first?.mark == YAMLMark(line: 3, column: 5))
    }
}
