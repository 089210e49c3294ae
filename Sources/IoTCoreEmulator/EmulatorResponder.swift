import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The HTTP side of the emulator: routes `POST /auth`, `POST /topic/…` and the `/_emulator/…` inspection
/// endpoints. Routing is by hand rather than with Hummingbird's router because the topic is the raw rest
/// of the path (a literal `$`, `%24`, any depth), and the query-string rule needs the raw URI.
struct EmulatorResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let core: EmulatorCore

    /// Bodies beyond this are not even drained: the answer is sent and the connection left to Hummingbird.
    static let drainLimit = 16 * 1024 * 1024
    /// Largest `/auth` body; a real one is under 200 bytes.
    static let maxAuthBodyBytes = 64 * 1024
    static let passwordField = HTTPField.Name("Password")!

    func respond(to request: Request, context: Context) async throws -> Response {
        self.core.countRequest()
        let path = request.uri.path
        if path == "/auth" {
            guard request.method == .post else { return Self.methodNotAllowed() }
            return try await self.answer(endpoint: "auth") { try await self.authenticate(request) }
        }
        if path == "/topic" || path.hasPrefix("/topic/") {
            guard request.method == .post else { return Self.methodNotAllowed() }
            return try await self.answer(endpoint: "topic") { try await self.publish(request) }
        }
        if path.hasPrefix("/_emulator/") {
            return try await self.inspect(request, path: path)
        }
        return Self.json(
            JSONValue.object([("RetCode", .int(RetCode.parameterError.value)), ("Message", .string("Not found"))]),
            status: .notFound
        )
    }

    /// Runs a protocol handler, then applies the configured latency, counts and logs its answer.
    private func answer(
        endpoint: String,
        _ handler: () async throws -> EmulatorAnswer
    ) async throws -> Response {
        let end = self.core.beginAnswer()
        defer { end() }
        let answer = try await handler()
        let latency = self.core.faults.latency
        if latency > .zero {
            try await Task.sleep(for: latency)
        }
        self.core.count(answer: answer.retCode)
        var metadata = answer.logMetadata
        metadata["iotcore.endpoint"] = "\(endpoint)"
        metadata["http.retcode"] = "\(answer.retCode.value)"
        self.core.logger.debug("Answered an IoT-Core request", metadata: metadata)
        return Self.json(answer.json)
    }

    /// The result of reading a request body with a size limit.
    enum Body {
        case complete([UInt8])
        /// Over the limit; the count is what was read (all of it unless over ``drainLimit``).
        case tooLarge(Int)
    }

    /// Reads the body, keeping at most `limit` bytes. A larger body is still drained (up to ``drainLimit``) so
    /// the emulator can answer with a RetCode on a healthy connection instead of failing the upload.
    func readBody(_ request: Request, limit: Int) async throws -> Body {
        var bytes: [UInt8] = []
        var total = 0
        for try await buffer in request.body {
            total += buffer.readableBytes
            if total <= limit {
                bytes.append(contentsOf: buffer.readableBytesView)
            } else {
                bytes = []
                if total > Self.drainLimit { return .tooLarge(total) }
            }
        }
        return total <= limit ? .complete(bytes) : .tooLarge(total)
    }

    /// The media type of a `Content-Type` value, lowercased, without parameters.
    static func mediaType(_ value: String?) -> String? {
        guard let value else { return nil }
        let type = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return type.trimmingASCIIWhitespace().lowercased()
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }

    static func methodNotAllowed() -> Response {
        json(
            JSONValue.object([
                ("RetCode", .int(RetCode.parameterError.value)), ("Message", .string("Method not allowed")),
            ]),
            status: .methodNotAllowed
        )
    }
}
