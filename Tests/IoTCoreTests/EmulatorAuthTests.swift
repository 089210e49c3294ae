import Foundation
import Testing

@testable import IoTCoreEmulator

@Suite("Emulator /auth", .timeLimit(.minutes(1)))
struct EmulatorAuthTests {
    static let devices = [
        EmulatorTesting.device,
        EmulatorDevice(
            productSN: "abcdefgh12345678", deviceSN: "disabled01", secret: "anotherSecret000", disabled: true),
    ]

    @Test("a signed request gets an HS256 JWT valid for the token lifetime")
    func success() async throws {
        try await EmulatorTesting.withEmulator(EmulatorConfiguration(devices: Self.devices)) { harness in
            let device = EmulatorTesting.device
            let answer = try await harness.authenticate(
                productSN: device.productSN, deviceSN: device.deviceSN, secret: device.secret)
            #expect(answer.status == 200)
            #expect(answer.retCode == 0)
            #expect(answer.json?["Message"] as? String == "Success")
            // Key order as the vendor documents it.
            #expect(answer.text.hasPrefix(#"{"RetCode":0,"Message":"Success","Token":""#))
            let token = try #require(answer.json?["Token"] as? String)
            let parts = token.split(separator: ".")
            try #require(parts.count == 3)
            let header = try #require(Self.decodeJSON(parts[0]))
            #expect(header["alg"] as? String == "HS256")
            #expect(header["typ"] as? String == "JWT")
            let claims = try #require(Self.decodeJSON(parts[1]))
            #expect(claims["ProductSN"] as? String == device.productSN)
            #expect(claims["DeviceSN"] as? String == device.deviceSN)
            let iat = try #require((claims["iat"] as? NSNumber)?.int64Value)
            let exp = try #require((claims["exp"] as? NSNumber)?.int64Value)
            #expect(exp - iat == 604_800)
            #expect(abs(Double(iat) - Date().timeIntervalSince1970) < 60)
            #expect(harness.emulator.statistics().authentications == 1)
        }
    }

    enum Case: String, CaseIterable, Sendable {
        case wrongSignature, unknownDevice, unknownProduct, disabled, timestampTooOld, timestampTooNewSeconds,
            timestampGarbage, timestampNowMillisecondString, timestampNowSeconds, wrongContentType,
            malformedJSON, missingDeviceSN, missingAuthorization, uppercaseSignature
    }

    @Test("every /auth outcome", arguments: Case.allCases)
    func outcomes(_ testCase: Case) async throws {
        try await EmulatorTesting.withEmulator(EmulatorConfiguration(devices: Self.devices)) { harness in
            let device = EmulatorTesting.device
            let nowMilliseconds = Int64(Date().timeIntervalSince1970 * 1000)
            let answer: EmulatorHarness.Answer
            let expected: Int
            switch testCase {
            case .wrongSignature:
                answer = try await harness.authenticate(
                    productSN: device.productSN, deviceSN: device.deviceSN, secret: "wrong-secret")
                expected = 171
            case .uppercaseSignature:
                let body = Array(#"{"ProductSN":"\#(device.productSN)","DeviceSN":"\#(device.deviceSN)"}"#.utf8)
                let signature = LibCrypto.hex(LibCrypto.hmacSHA256(key: Array(device.secret.utf8), message: body))
                answer = try await harness.authenticate(
                    productSN: device.productSN, deviceSN: device.deviceSN, secret: device.secret,
                    signature: signature.uppercased())
                expected = 171
            case .unknownDevice:
                answer = try await harness.authenticate(
                    productSN: device.productSN, deviceSN: "nosuchdevice", secret: device.secret)
                expected = 100071
            case .unknownProduct:
                answer = try await harness.authenticate(
                    productSN: "nosuchproduct000", deviceSN: device.deviceSN, secret: device.secret)
                expected = 100071
            case .disabled:
                answer = try await harness.authenticate(
                    productSN: "abcdefgh12345678", deviceSN: "disabled01", secret: "anotherSecret000")
                expected = 100072
            case .timestampTooOld:
                answer = try await harness.authenticate(
                    productSN: device.productSN, deviceSN: device.deviceSN, secret: device.secret,
                    extraJSON: #","Timestamp":"\#(nowMilliseconds - 3_700_000)""#)
                expected = 100070
            case .timestampTooNewSeconds:
                answer = try await harness.authenticate(
                    productSN: device.productSN, deviceSN: device.deviceSN, secret: device.secret,
                    extraJSON: #","Timestamp":\#(nowMilliseconds / 1000 + 3700)"#)
                expected = 100070
            case .timestampGarbage:
                answer = try await harness.authenticate(
                    productSN: device.productSN, deviceSN: device.deviceSN, secret: device.secret,
                    extraJSON: #","Timestamp":"yesterday""#)
                expected = 100070
            case .timestampNowMillisecondString:
                answer = try await harness.authenticate(
                    productSN: device.productSN, deviceSN: device.deviceSN, secret: device.secret,
                    extraJSON: #","Timestamp":"\#(nowMilliseconds)""#)
                expected = 0
            case .timestampNowSeconds:
                answer = try await harness.authenticate(
                    productSN: device.productSN, deviceSN: device.deviceSN, secret: device.secret,
                    extraJSON: #","Timestamp":\#(nowMilliseconds / 1000 - 1800)"#)
                expected = 0
            case .wrongContentType:
                answer = try await harness.post(
                    "/auth", body: Array(#"{"ProductSN":"a","DeviceSN":"b"}"#.utf8),
                    headers: ["Content-Type": "text/plain", "Authorization": "00"])
                expected = 230
            case .malformedJSON:
                answer = try await harness.post(
                    "/auth", body: Array(#"{"ProductSN":"#.utf8),
                    headers: ["Content-Type": "application/json", "Authorization": "00"])
                expected = 230
            case .missingDeviceSN:
                answer = try await harness.post(
                    "/auth", body: Array(#"{"ProductSN":"abcdefgh12345678"}"#.utf8),
                    headers: ["Content-Type": "application/json; charset=utf-8", "Authorization": "00"])
                expected = 230
            case .missingAuthorization:
                answer = try await harness.post(
                    "/auth", body: Array(#"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001"}"#.utf8),
                    headers: ["Content-Type": "application/json"])
                expected = 230
            }
            #expect(answer.exitCode == 0, "curl: \(answer.stderr)")
            #expect(answer.status == 200)
            #expect(answer.retCode == expected, "\(answer.text)")
            if expected == 0 {
                #expect(answer.json?["Token"] is String)
            } else {
                #expect(answer.json?["Token"] == nil)
                #expect(answer.json?["Message"] is String)
            }
            #expect(harness.emulator.statistics().answers(expected) == 1)
        }
    }

    @Test("the signature covers the raw body bytes, whitespace included")
    func rawBodySignature() async throws {
        try await EmulatorTesting.withEmulator { harness in
            let device = EmulatorTesting.device
            let body = Array("{ \"DeviceSN\" : \"device001\",\n \"ProductSN\":\"abcdefgh12345678\" }".utf8)
            let signature = LibCrypto.hex(LibCrypto.hmacSHA256(key: Array(device.secret.utf8), message: body))
            let answer = try await harness.post(
                "/auth", body: body, headers: ["Content-Type": "application/json", "Authorization": signature])
            #expect(answer.retCode == 0, "\(answer.text)")
        }
    }

    @Test("GET /auth and unknown paths answer JSON errors")
    func wrongMethodAndPath() async throws {
        try await EmulatorTesting.withEmulator { harness in
            let wrongMethod = try await harness.get("/auth")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.retCode == 230)
            let unknown = try await harness.get("/nope")
            #expect(unknown.status == 404)
            #expect(unknown.json != nil)
        }
    }

    static func decodeJSON(_ part: Substring) -> [String: Any]? {
        guard let bytes = JSONWebToken.decodeBase64URL(part) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }
}
