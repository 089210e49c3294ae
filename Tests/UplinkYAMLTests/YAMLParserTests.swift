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

    /// The classic "billion laughs": 9 levels of 10 aliases each, 501 bytes that expand to 10^8 nodes.
    static let billionLaughs: String = {
        var lines = [#"a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]"#]
        for level in 1...8 {
            let previous = "*a\(level - 1)"
            let items = Array(repeating: previous, count: 10).joined(separator: ",")
            lines.append("a\(level): &a\(level) [\(items)]")
        }
        return lines.joined(separator: "\n") + "\n"
    }()

    @Test(.timeLimit(.minutes(1))) func aliasBombsAreRefusedWhereTheyCrossTheLimit() {
        #expect(Self.billionLaughs.utf8.count < 520)
        do {
            _ = try YAMLParser.parse(Array(Self.billionLaughs.utf8), file: "bomb.yaml")
            Issue.record("the bomb parsed")
        } catch {
            #expect(error.file == "bomb.yaml")
            // a4 (10^5 nodes once expanded) is the first past the limit of 100,000 nodes, at its 8th alias.
            #expect(error.mark.line == 5)
            #expect(error.message.contains("more than 100000 nodes once its aliases are expanded"), "\(error)")
        }
    }

    @Test func aliasesWithinTheLimitsAreExpanded() throws {
        // a0 to a3: about 12,000 nodes, within the limits.
        let text = Self.billionLaughs.split(separator: "\n").prefix(4).joined(separator: "\n")
        let root = try YAMLParser.parse(text)
        #expect(root["a3"]?.sequence?.count == 10)
        #expect(root["a3"]?.sequence?.first?.sequence?.first?.sequence?.first?.sequence?.first?.scalar == "lol")
    }

    @Test func longScalarsRepeatedByAliasesAreBoundedByBytes() {
        // Few nodes, many bytes: a 1 MiB scalar used 20 times is past 16 MiB.
        let big = String(repeating: "x", count: 1 << 20)
        let text = "a: &a \(big)\nb: [" + Array(repeating: "*a", count: 20).joined(separator: ", ") + "]\n"
        #expect(throws: YAMLError.self) { try YAMLParser.parse(text) }
        do {
            _ = try YAMLParser.parse(text)
        } catch {
            #expect(error.message.contains("MiB of text once its aliases are expanded"))
        }
    }

    @Test func duplicateKeysAreErrorsWithBothPlaces() {
        do {
            _ = try YAMLParser.parse(Array("a: 1\nb:\n  c: 2\n  c: 3\n".utf8), file: "dup.yaml")
            Issue.record("a duplicate key parsed")
        } catch {
            #expect(error.description == "dup.yaml:4:3: key 'c' is written twice in this mapping (first at line 3, column 3); YAML keys are unique")
        }
        var problems: [YAMLError] = []
        let root = try? YAMLParser.parse(Array("a: 1\na: 2\nb: {x: 1, x: 2}\n".utf8), file: "d.yaml", problems: &problems)
        #expect(problems.map(\.mark) == [YAMLMark(line: 2, column: 1), YAMLMark(line: 3, column: 11)])
        // The first one is kept.
        #expect(root?["a"]?.scalar == "1")
    }

    @Test func mergedKeysAreOverriddenWithoutError() throws {
        let root = try YAMLParser.parse(
            """
            base: &base {a: 1, b: 2}
            more: &more {b: 3, c: 4}
            x:
              <<: [*base, *more]
              a: 10
            """)
        let x = try #require(root["x"]?.mapping)
        // Explicit keys win; of two merged mappings the first wins (b: 2).
        #expect(x.map { "\($0.key.scalar!)=\($0.value.scalar!)" }.sorted() == ["a=10", "b=2", "c=4"])
    }

    @Test func tabsAsIndentationAreExplained() {
        do {
            _ = try YAMLParser.parse(Array("sources:\n\tprobe: {type: stdin}\n".utf8), file: "tab.yaml")
            Issue.record("a tab parsed")
        } catch {
            #expect(error.mark == YAMLMark(line: 2, column: 1))
            #expect(error.message.contains("tabs are not allowed for indentation in YAML; use spaces"), "\(error)")
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
