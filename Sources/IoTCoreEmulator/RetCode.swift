/// The RetCodes of the IoT-Core HTTPS interface (spec: `shared/spec/iotcore-http.md`, "RetCode policy"),
/// with the message the emulator sends along.
struct RetCode: Sendable, Hashable {
    let value: Int
    let message: String

    static let success = RetCode(value: 0, message: "Success")
    static let serviceUnavailable = RetCode(value: 130, message: "Service temporarily unavailable")
    static let signatureError = RetCode(value: 171, message: "Signature error")
    static let parameterError = RetCode(value: 230, message: "Parameter error")
    static let timestampError = RetCode(value: 100070, message: "Timestamp error")
    static let deviceNotFound = RetCode(value: 100071, message: "Product or device does not exist")
    static let deviceDisabled = RetCode(value: 100072, message: "Device is disabled")
    static let tokenInvalid = RetCode(value: 100073, message: "Token check error")
    static let tokenExpired = RetCode(value: 100074, message: "Token expired")
    static let aclFailed = RetCode(value: 100075, message: "ACL check failed: no publish right on topic")
    static let bodyTooLarge = RetCode(value: 100076, message: "Message body exceeds the limit")
    static let publishFailed = RetCode(value: 100077, message: "Publish failed")

    /// The same code with a more precise message (e.g. which parameter is wrong).
    func with(message: String) -> RetCode {
        RetCode(value: self.value, message: message)
    }
}
