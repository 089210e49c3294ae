import HTTPTypes
import Hummingbird
import Logging

extension EmulatorResponder {
    /// `POST /topic/<topic>`: checks, in order, the URL (no query string, a well-formed topic), the token,
    /// the content type, the body size and the device's ACL; then draws the injected faults; then accepts.
    func publish(_ request: Request) async throws -> EmulatorAnswer {
        // Read the body first: whatever the answer, the connection must be left at a request boundary.
        let body = try await self.readBody(request, limit: self.core.configuration.maxBodyBytes)

        if request.uri.string.contains("?") {
            return EmulatorAnswer(.parameterError.with(message: "Parameter error: query string not allowed"))
        }
        guard let topic = Self.topic(fromPath: request.uri.path) else {
            return EmulatorAnswer(.parameterError.with(message: "Parameter error: invalid topic"))
        }
        var metadata: Logger.Metadata = ["iotcore.topic": "\(topic)"]

        guard let token = request.headers[Self.passwordField], !token.isEmpty else {
            return EmulatorAnswer(.tokenInvalid, logMetadata: metadata)
        }
        let claims: TokenClaims
        switch self.core.checkToken(token) {
        case .invalid: return EmulatorAnswer(.tokenInvalid, logMetadata: metadata)
        case .expired: return EmulatorAnswer(.tokenExpired, logMetadata: metadata)
        case .valid(let valid): claims = valid
        }
        metadata["iotcore.product_sn"] = "\(claims.ProductSN)"
        metadata["iotcore.device_sn"] = "\(claims.DeviceSN)"

        guard Self.mediaType(request.headers[.contentType]) == "application/octet-stream" else {
            return EmulatorAnswer(
                .parameterError.with(message: "Parameter error: Content-Type must be application/octet-stream"),
                logMetadata: metadata
            )
        }
        let bytes: [UInt8]
        switch body {
        case .complete(let complete): bytes = complete
        case .tooLarge(let size):
            metadata["http.body_bytes"] = "\(size)"
            return EmulatorAnswer(.bodyTooLarge, logMetadata: metadata)
        }
        guard let device = self.core.device(productSN: claims.ProductSN, deviceSN: claims.DeviceSN) else {
            // Only reachable if a token outlives its device, which a fixed device list does not allow.
            return EmulatorAnswer(.tokenInvalid, logMetadata: metadata)
        }
        guard TopicFilter.allows(device.publishACL, topic: topic) else {
            return EmulatorAnswer(.aclFailed, logMetadata: metadata)
        }

        let faults = self.core.faults
        if Double.random(in: 0..<1) < faults.ratio130 {
            return EmulatorAnswer(.serviceUnavailable, logMetadata: metadata)
        }
        if Double.random(in: 0..<1) < faults.ratio100077 {
            return EmulatorAnswer(.publishFailed, logMetadata: metadata)
        }

        let messageID = await self.core.accept(
            topic: topic,
            productSN: claims.ProductSN,
            deviceSN: claims.DeviceSN,
            body: bytes
        )
        metadata["iotcore.message_id"] = "\(messageID)"
        metadata["http.body_bytes"] = "\(bytes.count)"
        return EmulatorAnswer(.success, [("MessageID", .string(messageID))], logMetadata: metadata)
    }

    /// The topic of a `/topic/…` path, percent-decoded, when it is one IoT-Core accepts: it starts with `/`,
    /// has at most 128 bytes and 7 slashes, no empty level, no wildcard, and levels of letters, digits and
    /// `- _ @ :` (the first level may be `$system`).
    static func topic(fromPath path: String) -> String? {
        guard path.hasPrefix("/topic/") else { return nil }
        guard let topic = percentDecoded(path.dropFirst("/topic".count)) else { return nil }
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard topic.utf8.count <= 128, levels.count - 1 <= 7, levels.first == "" else { return nil }
        for (index, level) in levels.enumerated().dropFirst() {
            if index == 1 && level == "$system" { continue }
            guard !level.isEmpty, level.utf8.allSatisfy(isTopicByte) else { return nil }
        }
        return topic
    }

    private static func isTopicByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "@"),
            UInt8(ascii: ":"):
            return true
        default:
            return false
        }
    }

    /// `text` with `%XX` escapes decoded; `nil` for a broken escape or bytes that are not UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
