import Testing
import UplinkCore
@testable import UplinkPlugins

/// A plugin's stdout lines that break the protocol: the error quotes only the start of what the plugin wrote,
/// however long it is (found by the `process` fuzz target; the inputs are in Fuzz/Regressions/process/).
@Suite struct ProcessProtocolParsingTests {
    struct Refused: Sendable, CustomTestStringConvertible {
        var line: String
        var start: String
        var testDescription: String { start }
    }

    static let long = String(repeating: "x", count: 700)

    @Test(arguments: [
        Refused(line: #"{"type":"\#(long)"}"#, start: "unknown message type 'xxx"),
        Refused(line: #"{"type":"ack","id":1,"status":"\#(long)"}"#, start: "an ack's status is delivered or failed, not 'xxx"),
        Refused(
            line: #"{"type":"hello","protocol":1,"name":"p","output":"\#(long)"}"#,
            start: #"hello's "output" is raw, record or message, not 'xxx"#),
        Refused(line: #"{"type":"events","events":"\#(long)"}"#, start: #""events" must be a list: '{"type""#),
        Refused(line: "not json " + long, start: "not a JSON object: 'not json xxx"),
    ])
    func aRefusedLineIsQuotedShort(_ refused: Refused) {
        #expect(throws: ProcessProtocolViolation.self) { try PluginMessage.parse(ArraySlice(refused.line.utf8)) }
        do {
            _ = try PluginMessage.parse(ArraySlice(refused.line.utf8))
        } catch {
            #expect(error.message.hasPrefix(refused.start), "\(error.message)")
            #expect(error.message.utf8.count <= 250, "\(error.message.utf8.count) bytes: \(error.message)")
        }
    }
}
