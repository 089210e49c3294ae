import HTTPTypes
import Hummingbird
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension EmulatorResponder {
    /// The inspection endpoints, without authentication (the emulator is a loopback test tool):
    /// `GET /_emulator/messages`, `GET /_emulator/stats`, `GET` and `POST /_emulator/faults`.
    func inspect(_ request: Request, path: String) async throws -> Response {
        if path == "/_emulator/messages" && request.method == .get {
            return Self.json(JSONValue.array(self.core.acceptedMessages().map(Self.json(message:))))
        }
        if path == "/_emulator/stats" && request.method == .get {
            return Self.json(Self.json(statistics: self.core.statistics()))
        }
        if path == "/_emulator/faults" && request.method == .get {
            return Self.json(Self.json(faults: self.core.faults))
        }
        if path == "/_emulator/faults" && request.method == .post {
            return try await self.updateFaults(request)
        }
        return Self.json(JSONValue.object([("error", .string("not found"))]), status: .notFound)
    }

    private func updateFaults(_ request: Request) async throws -> Response {
        guard case .complete(let body) = try await self.readBody(request, limit: Self.maxAuthBodyBytes),
            let update = try? JSONDecoder().decode(FaultsUpdate.self, from: Data(body))
        else {
            return Self.badRequest(
                "expected a JSON object with ratio_130, ratio_100077, auth_ratio_130, latency_ms, "
                    + "refuse_connections_seconds"
            )
        }
        var faults = self.core.faults
        for (name, ratio) in [
            ("ratio_130", update.ratio_130), ("ratio_100077", update.ratio_100077),
            ("auth_ratio_130", update.auth_ratio_130),
        ] {
            if let ratio, !(0...1).contains(ratio) { return Self.badRequest("\(name) must be in 0...1") }
        }
        faults.ratio130 = update.ratio_130 ?? faults.ratio130
        faults.ratio100077 = update.ratio_100077 ?? faults.ratio100077
        faults.authRatio130 = update.auth_ratio_130 ?? faults.authRatio130
        if let latency = update.latency_ms {
            guard latency >= 0, latency.isFinite else { return Self.badRequest("latency_ms must not be negative") }
            faults.latency = .milliseconds(latency)
        }
        if let seconds = update.refuse_connections_seconds {
            guard seconds >= 0, seconds.isFinite else {
                return Self.badRequest("refuse_connections_seconds must not be negative")
            }
            faults.refuseConnectionsUntil = seconds == 0 ? nil : ContinuousClock.now.advanced(by: .seconds(seconds))
        }
        self.core.setFaults(faults)
        self.core.logger.info(
            "Changed the injected faults",
            metadata: [
                "faults.ratio_130": "\(faults.ratio130)", "faults.ratio_100077": "\(faults.ratio100077)",
                "faults.auth_ratio_130": "\(faults.authRatio130)", "faults.latency": "\(faults.latency)",
                "faults.refuse_connections_seconds": "\(update.refuse_connections_seconds ?? 0)",
            ]
        )
        return Self.json(Self.json(faults: faults))
    }

    static func badRequest(_ reason: String) -> Response {
        json(JSONValue.object([("error", .string(reason))]), status: .badRequest)
    }

    /// A message for `/_emulator/messages`: the body as text when it is UTF-8, else as `body_base64`.
    static func json(message: AcceptedMessage) -> String {
        var fields: [(String, JSONValue)] = [
            ("topic", .string(message.topic)),
            ("product_sn", .string(message.productSN)),
            ("device_sn", .string(message.deviceSN)),
            ("message_id", .string(message.messageID)),
            ("received_at", .string(message.receivedAt.formatted(.iso8601))),
            ("body_bytes", .int(message.body.count)),
        ]
        if let text = String(validating: message.body, as: UTF8.self) {
            fields.append(("body", .string(text)))
        } else {
            fields.append(("body_base64", .string(Data(message.body).base64EncodedString())))
        }
        return JSONValue.object(fields)
    }

    static func json(statistics: EmulatorStatistics) -> String {
        let retCodes = statistics.answersByRetCode.sorted { $0.key < $1.key }.map {
            (String($0.key), JSONValue.int($0.value))
        }
        return JSONValue.object([
            ("requests", .int(statistics.requests)),
            ("authentications", .int(statistics.authentications)),
            ("accepted_messages", .int(statistics.acceptedMessages)),
            ("accepted_bytes", .int(statistics.acceptedBytes)),
            ("connections_refused", .int(statistics.connectionsRefused)),
            ("retcodes", .raw(JSONValue.object(retCodes))),
        ])
    }

    static func json(faults: EmulatorFaults) -> String {
        var remaining = 0.0
        if let until = faults.refuseConnectionsUntil {
            remaining = max(0, (until - ContinuousClock.now).inSeconds)
        }
        return JSONValue.object([
            ("ratio_130", .double(faults.ratio130)),
            ("ratio_100077", .double(faults.ratio100077)),
            ("auth_ratio_130", .double(faults.authRatio130)),
            ("latency_ms", .double(faults.latency.inSeconds * 1000)),
            ("refuse_connections_seconds", .double(remaining)),
        ])
    }
}
