import Logging
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What the emulator knows and remembers, shared by the public ``IoTCoreEmulator`` facade, the HTTP responder
/// and the connection-refusing channel.
final class EmulatorCore: Sendable {
    /// A device's identity as `/auth` names it.
    struct DeviceID: Hashable, Sendable {
        var productSN: String
        var deviceSN: String
    }

    /// The outcome of checking a `Password` token.
    enum TokenCheck: Sendable {
        case valid(TokenClaims)
        case invalid
        case expired
    }

    let configuration: EmulatorConfiguration
    let logger: Logger
    /// The per-emulator HS256 key: tokens of another emulator run never verify here.
    let tokenKey: [UInt8]
    let devices: [DeviceID: EmulatorDevice]
    let state: Mutex<EmulatorState>
    /// Set while running when `acceptedLogPath` is configured.
    let acceptedLog: Mutex<AcceptedLog?>

    init(configuration: EmulatorConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.tokenKey = LibCrypto.randomBytes(32)
        var devices: [DeviceID: EmulatorDevice] = [:]
        for device in configuration.devices {
            devices[DeviceID(productSN: device.productSN, deviceSN: device.deviceSN)] = device
        }
        self.devices = devices
        self.state = Mutex(EmulatorState(faults: configuration.faults))
        self.acceptedLog = Mutex(nil)
    }

    func device(productSN: String, deviceSN: String) -> EmulatorDevice? {
        self.devices[DeviceID(productSN: productSN, deviceSN: deviceSN)]
    }

    var faults: EmulatorFaults {
        self.state.withLock { $0.faults }
    }

    func setFaults(_ faults: EmulatorFaults) {
        self.state.withLock { $0.faults = faults }
    }

    func countRequest() {
        self.state.withLock { $0.statistics.requests += 1 }
    }

    /// Counts a protocol request as being answered until the returned closure runs.
    func beginAnswer() -> @Sendable () -> Void {
        self.state.withLock { state in
            state.requestsInProgress += 1
            state.statistics.maxConcurrentRequests = max(state.statistics.maxConcurrentRequests, state.requestsInProgress)
        }
        return { self.state.withLock { $0.requestsInProgress -= 1 } }
    }

    func count(answer retCode: RetCode) {
        self.state.withLock { $0.statistics.answersByRetCode[retCode.value, default: 0] += 1 }
    }

    /// Decides, at accept time, whether a new connection is refused, and counts it when it is.
    func shouldRefuseConnection() -> Bool {
        let now = ContinuousClock.now
        return self.state.withLock { state in
            guard state.faults.refusesConnection(at: now) else { return false }
            state.statistics.connectionsRefused += 1
            return true
        }
    }

    /// Issues a token for `device`, valid for the configured lifetime.
    func issueToken(for device: EmulatorDevice) -> String {
        let lifetime = self.configuration.tokenLifetime
        let issuedAt = Int64(Date().timeIntervalSince1970.rounded(.down))
        // `exp` is whole seconds; round the lifetime up so `exp` is never before the real expiry.
        let (seconds, attoseconds) = lifetime.components
        let lifetimeSeconds = max(1, seconds + (attoseconds > 0 ? 1 : 0))
        let claims = TokenClaims(
            ProductSN: device.productSN,
            DeviceSN: device.deviceSN,
            iat: issuedAt,
            exp: issuedAt + lifetimeSeconds,
            jti: LibCrypto.hex(LibCrypto.randomBytes(12))
        )
        let deadline = ContinuousClock.now.advanced(by: lifetime)
        self.state.withLock { state in
            state.pruneTokens(now: .now)
            state.tokenDeadlines[claims.jti] = deadline
            state.statistics.authentications += 1
        }
        return JSONWebToken.sign(claims, key: self.tokenKey)
    }

    /// Checks a `Password` header value.
    func checkToken(_ token: String) -> TokenCheck {
        guard case .success(let claims) = JSONWebToken.verify(token, key: self.tokenKey) else { return .invalid }
        let now = ContinuousClock.now
        let deadline = self.state.withLock { $0.tokenDeadlines[claims.jti] }
        guard let deadline, now < deadline else { return .expired }
        return .valid(claims)
    }

    /// Records an accepted message and returns its `MessageID`. Returns once the message is also in the
    /// accepted-message log when one is configured.
    func accept(topic: String, productSN: String, deviceSN: String, body: [UInt8]) async -> String {
        let log = self.acceptedLog.withLock { $0 }
        let caps = self.configuration.retentionCaps
        let logger = self.logger
        return await withCheckedContinuation { continuation in
            // The id is assigned and the line queued under one lock, so the file keeps id order.
            self.state.withLock { state in
                let messageID = String(state.nextMessageID)
                state.nextMessageID += 1
                let message = AcceptedMessage(
                    topic: topic,
                    productSN: productSN,
                    deviceSN: deviceSN,
                    body: body,
                    messageID: messageID,
                    receivedAt: Date()
                )
                state.retain(message, within: caps)
                state.statistics.acceptedMessages += 1
                state.statistics.acceptedBytes += body.count
                guard let log else {
                    continuation.resume(returning: messageID)
                    return
                }
                log.append(message) { error in
                    if let error {
                        // The message was accepted; the log is the emulator's own side channel, so its
                        // failure is reported loudly but does not turn into a RetCode.
                        logger.error(
                            "Cannot write the accepted-message log",
                            metadata: ["file.path": "\(log.path)", "error": "\(error)"]
                        )
                    }
                    continuation.resume(returning: messageID)
                }
            }
        }
    }

    func acceptedMessages() -> [AcceptedMessage] {
        let caps = self.configuration.retentionCaps
        return self.state.withLock { Array($0.accepted.suffix($0.retainedSuffix(within: caps))) }
    }

    func statistics() -> EmulatorStatistics {
        self.state.withLock { $0.statistics }
    }
}
