import ArgumentParser
import UplinkCore
import UplinkOperations

#if canImport(Glibc)
import Glibc
#endif

struct Tap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a live sample of the events leaving a component, as JSON lines.",
        discussion: """
            Reads GET /tap/<component> from a running `uplink run` whose configuration has `api:`. The \
            pipeline is never slowed down: at most 64 events per chunk are copied, and copies are dropped when \
            this reader is slow (counted in uplink_tap_dropped_events_total). Each line is \
            {"component_id":…,"kind":…,"topic":…,"event":…}. Ends after --limit events, or on Ctrl-C.
            """
    )

    @Argument(help: "The id of the source or transform to watch.")
    var component: String

    @Option(help: "Stop after this many events.")
    var limit: Int?

    @Option(help: "The API address of the running pipeline (its `api.address`).")
    var api: String = APIConfig.defaultAddress

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        // A closed stdout (`uplink tap x | head`) ends the command instead of killing it.
        signal(SIGPIPE, SIG_IGN)
        let client: APIClient
        do {
            client = try APIClient(address: api)
        } catch {
            throw ValidationError("\(error)")
        }
        var path = "/tap/" + Self.percentEncoded(component)
        if let limit { path += "?limit=\(limit)" }
        var status = 0
        var errorBody: [UInt8] = []
        do {
            try await client.stream(path) { status = $0 } onBody: { bytes in
                guard status == 200 else {
                    errorBody += bytes
                    return
                }
                if bytes.withUnsafeBytes({ FileIO.writeAll(1, $0) }) != nil { throw ExitCode.success }
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        if status != 200 {
            printError("uplink tap: \(APIMessage.text(errorBody, status: status))")
            throw ExitCode(1)
        }
    }

    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            let safe = (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            result += safe ? String(UnicodeScalar(byte)) : "%" + String(byte, radix: 16, uppercase: true)
        }
        return result
    }
}

/// The `error` of an API answer, or its status.
enum APIMessage {
    static func text(_ body: [UInt8], status: Int) -> String {
        if case .object(let fields)? = try? JSONReader.parse(body), case .string(let message)? = fields["error"] {
            return message
        }
        return "the API answered HTTP \(status)"
    }
}
