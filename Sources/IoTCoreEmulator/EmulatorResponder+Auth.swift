import HTTPTypes
import Hummingbird
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension EmulatorResponder {
    /// `POST /auth`: checks, in order, the content type, the body, the device, the signature, whether the
    /// device is enabled and the timestamp, then issues a token.
    func authenticate(_ request: Request) async throws -> EmulatorAnswer {
        let body: [UInt8]
        switch try await self.readBody(request, limit: Self.maxAuthBodyBytes) {
        case .complete(let bytes): body = bytes
        case .tooLarge: return EmulatorAnswer(.parameterError.with(message: "Parameter error: body too large"))
        }
        guard Self.mediaType(request.headers[.contentType]) == "application/json" else {
            return EmulatorAnswer(
                .parameterError.with(message: "Parameter error: Content-Type must be application/json"))
        }
        guard let parsed = try? JSONDecoder().decode(AuthRequestBody.self, from: Data(body)),
            !parsed.productSN.isEmpty, !parsed.deviceSN.isEmpty
        else {
            return EmulatorAnswer(.parameterError.with(message: "Parameter error: ProductSN and DeviceSN are required"))
        }
        let metadata: Logger.Metadata = [
            "iotcore.product_sn": "\(parsed.productSN)", "iotcore.device_sn": "\(parsed.deviceSN)",
        ]
        guard let device = self.core.device(productSN: parsed.productSN, deviceSN: parsed.deviceSN) else {
            return EmulatorAnswer(.deviceNotFound, logMetadata: metadata)
        }
        // A missing header is a malformed request; a present but wrong one is a signature error.
        guard let signature = request.headers[.authorization], !signature.isEmpty else {
            return EmulatorAnswer(
                .parameterError.with(message: "Parameter error: Authorization is required"), logMetadata: metadata)
        }
        // The signature covers the body bytes exactly as received, not a re-serialisation.
        let expected = LibCrypto.hex(LibCrypto.hmacSHA256(key: Array(device.secret.utf8), message: body))
        guard LibCrypto.constantTimeEquals(Array(expected.utf8), Array(signature.utf8)) else {
            return EmulatorAnswer(.signatureError, logMetadata: metadata)
        }
        if device.disabled {
            return EmulatorAnswer(.deviceDisabled, logMetadata: metadata)
        }
        if let timestamp = parsed.timestamp {
            let allowance = self.core.configuration.clockSkewAllowance.inSeconds
            guard let seconds = AuthRequestBody.seconds(of: timestamp),
                abs(Date().timeIntervalSince1970 - seconds) <= allowance
            else { return EmulatorAnswer(.timestampError, logMetadata: metadata) }
        }
        if Double.random(in: 0..<1) < self.core.faults.authRatio130 {
            return EmulatorAnswer(.serviceUnavailable, logMetadata: metadata)
        }
        let token = self.core.issueToken(for: device)
        return EmulatorAnswer(.success, [("Token", .string(token))], logMetadata: metadata)
    }
}
