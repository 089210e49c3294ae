import FoundationEssentials
import Glibc
import Logging
import Synchronization

@testable import IoTCore
import UplinkTestSupport

/// Virtual time: sleeping advances the clocks at once and records the delay, so retry tests do not wait.
final class ManualTime: Sendable {
    struct State {
        var monotonic: Duration = .zero
        var wall: Date
        var sleeps: [Duration] = []
        var random = SeededGenerator(seed: 42)
    }

    let state: Mutex<State>

    init(wall: Date = Date(timeIntervalSince1970: 1_700_000_000)) {
        state = Mutex(State(wall: wall))
    }

    var sleeps: [Duration] { state.withLock { $0.sleeps } }

    func advance(by duration: Duration) {
        state.withLock {
            $0.monotonic += duration
            $0.wall = $0.wall.addingTimeInterval(duration.testSeconds)
        }
    }

    var source: TimeSource {
        TimeSource(
            monotonic: { self.state.withLock { $0.monotonic } },
            wall: { self.state.withLock { $0.wall } },
            sleep: { duration in
                try Task.checkCancellation()
                self.state.withLock { $0.sleeps.append(duration) }
                self.advance(by: duration)
                await Task.yield()
                try Task.checkCancellation()
            },
            random: { self.state.withLock { $0.random.next() } }
        )
    }
}

extension Duration {
    var testSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A transport whose answers a test scripts; records every request.
final class ScriptedTransport: HTTPTransport {
    typealias Handler = @Sendable (HTTPRequest, Int) async throws -> HTTPResponse

    let handler: Handler
    let recorded = Mutex<[HTTPRequest]>([])
    let shutdownCount = Atomic<Int>(0)

    /// `handler` gets the request and its 0-based index among all requests.
    init(_ handler: @escaping Handler) {
        self.handler = handler
    }

    var requests: [HTTPRequest] { recorded.withLock { $0 } }
    var authRequests: [HTTPRequest] { requests.filter { $0.url.hasSuffix("/auth") } }
    var publishRequests: [HTTPRequest] { requests.filter { $0.url.contains("/topic/") } }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let index = recorded.withLock {
            $0.append(request)
            return $0.count - 1
        }
        return try await handler(request, index)
    }

    func performBlocking<T: Sendable>(_ job: @escaping @Sendable () -> T) async -> T {
        job()
    }

    func shutdown() {
        shutdownCount.add(1, ordering: .relaxed)
    }
}

enum Fixtures {
    static let credentials = DeviceCredentials(
        productSN: "abcdefgh12345678", deviceSN: "device001", deviceSecret: Secret("s3cr3tKey0000000"))

    static func configuration(
        endpoint: String = "https://iot.example.test", stateDirectory: String? = nil,
        retry: RetryPolicy = RetryPolicy(), sendTimestamp: Bool = false
    ) -> IoTCoreClient.Configuration {
        IoTCoreClient.Configuration(
            endpoint: endpoint, credentials: credentials, authTimestamp: sendTimestamp ? .always : .never,
            stateDirectory: stateDirectory, retry: retry)
    }

    static func json(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, body: Array(text.utf8), latency: .milliseconds(3))
    }

    /// A JWT with the given claims (the signature is not checked by the client).
    static func jwt(exp: Int64?, iat: Int64?) -> String {
        var claims: [String] = []
        if let exp { claims.append("\"exp\":\(exp)") }
        if let iat { claims.append("\"iat\":\(iat)") }
        claims.append("\"sub\":\"device001\"")
        return base64URL("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "."
            + base64URL("{" + claims.joined(separator: ",") + "}")
            + ".c2lnbmF0dXJl"
    }

    static func base64URL(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacing("+", with: "-").replacing("/", with: "_")
            .replacing("=", with: "")
    }

    static func authOK(token: String) -> HTTPResponse {
        json("{\"RetCode\":0,\"Message\":\"Success\",\"Token\":\"\(token)\"}")
    }

    static func publishOK(_ messageID: String = "123456") -> HTTPResponse {
        json("{\"RetCode\":0,\"Message\":\"Success\",\"MessageID\":\"\(messageID)\"}")
    }

    static func retCode(_ code: Int, message: String = "x") -> HTTPResponse {
        json("{\"RetCode\":\(code),\"Message\":\"\(message)\"}")
    }

    static let logger: Logger = {
        var logger = Logger(label: "iotcore-tests", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        return logger
    }()

    /// A fresh, empty directory under /tmp.
    static func temporaryDirectory() -> String {
        "/tmp/iotcore-tests-\(UInt64.random(in: 0...UInt64.max))"
    }

    /// Removes the token file of `directory` and the (then empty) directories up to the `/tmp/iotcore-tests-…` root.
    static func removeTokenDirectory(_ directory: String) {
        TokenStore(directory: directory, credentials: credentials).remove()
        var path = directory
        while path.hasPrefix("/tmp/iotcore-tests-") {
            rmdir(path)
            guard let slash = path.lastIndex(of: "/") else { break }
            path = String(path[..<slash])
        }
    }
}

/// Collects log records, to check what is logged (and that secrets are not).
final class RecordingLogHandler: LogHandler, Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: String
    }

    let records: Mutex<[Record]>
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }

    init() { records = Mutex([]) }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        let metadata = event.metadata.map { "\($0)" } ?? ""
        records.withLock { $0.append(Record(level: event.level, message: "\(event.message)", metadata: metadata)) }
    }
}
