import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A local emulator of UCloud IoT-Core's HTTPS device interface (`POST /auth`, `POST /topic/…`), faithful
/// to `shared/spec/iotcore-http.md`: real HS256 tokens, real TLS, every RetCode of the spec producible, and
/// fault injection (RetCodes 130 and 100077, latency, refused connections) to exercise a client's retries.
///
/// It also serves loopback inspection endpoints without authentication: `GET /_emulator/messages`,
/// `GET /_emulator/stats`, `GET`/`POST /_emulator/faults`.
///
/// ```swift
/// let emulator = try IoTCoreEmulator(configuration: .init(devices: [device]), logger: logger)
/// try await withThrowingTaskGroup(of: Void.self) { group in
///     group.addTask { try await emulator.run() }
///     let port = try await emulator.waitUntilReady()
///     // … talk to https://127.0.0.1:\(port), trusting emulator.caCertificatePEM …
///     await emulator.shutdownGracefully()
/// }
/// ```
///
/// The emulator is a swift-service-lifecycle `Service`: inside a `ServiceGroup` it stops on the group's
/// graceful shutdown. ``shutdownGracefully()`` stops it from outside; task cancellation stops it too, abruptly
/// (Hummingbird then logs the cancellation as an error).
public final class IoTCoreEmulator: Service, Sendable {
    private let core: EmulatorCore
    private let tlsConfiguration: TLSConfiguration?

    /// The PEM of the generated CA when the TLS mode is ``EmulatorTLS/selfSigned(caCertificateOutput:)``,
    /// else `nil`. Clients trust it to verify the emulator's server certificate.
    public let caCertificatePEM: String?

    /// Creates an emulator: validates the configuration, and generates (self-signed mode) or loads (files
    /// mode) the certificates. Nothing listens until ``run()``. Generating a P-256 CA and server key takes a
    /// few milliseconds of CPU and `.files` reads two small files: a one-off start-up cost.
    /// - Throws: ``EmulatorError`` with every configuration problem, or a certificate failure.
    public init(configuration: EmulatorConfiguration, logger: Logger) throws {
        let problems = configuration.problems()
        guard problems.isEmpty else {
            throw EmulatorError(.invalidConfiguration, problems.joined(separator: "; "))
        }
        switch configuration.tls {
        case .none:
            self.tlsConfiguration = nil
            self.caCertificatePEM = nil
        case .selfSigned:
            let generated = try SelfSignedCertificateAuthority.generate(extraHosts: [configuration.host])
            do {
                self.tlsConfiguration = try Self.serverTLSConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(generated.serverCertificatePEM.utf8)),
                    privateKey: try NIOSSLPrivateKey(bytes: Array(generated.serverPrivateKeyPEM.utf8), format: .pem)
                )
            } catch {
                throw EmulatorError(.tlsConfiguration, "cannot load the generated certificate", underlying: error)
            }
            self.caCertificatePEM = generated.caCertificatePEM
        case .files(let certificateChain, let privateKey):
            do {
                self.tlsConfiguration = try Self.serverTLSConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(certificateChain),
                    privateKey: try NIOSSLPrivateKey(file: privateKey, format: .pem)
                )
            } catch {
                throw EmulatorError(
                    .tlsConfiguration,
                    "cannot load the certificate chain '\(certificateChain)' or the key '\(privateKey)'",
                    underlying: error
                )
            }
            self.caCertificatePEM = nil
        }
        self.core = EmulatorCore(configuration: configuration, logger: logger)
    }

    /// Serves until the task is cancelled or a graceful shutdown is triggered; writes the CA certificate to
    /// `caCertificateOutput` first when one is configured.
    /// - Throws: ``EmulatorError`` when called twice or when a file cannot be written; the bind error when
    ///   the address is not available.
    public func run() async throws {
        try self.core.state.withLock { state in
            guard case .idle = state.lifecycle else {
                throw EmulatorError(.alreadyRunning, "run() can be called once per emulator")
            }
            state.lifecycle = .starting
        }
        do {
            try await self.serve()
            self.finish(EmulatorError(.notListening, "the emulator stopped"))
        } catch {
            self.finish(EmulatorError(.notListening, "the emulator failed", underlying: error))
            throw error
        }
    }

    private func serve() async throws {
        let configuration = self.core.configuration
        let logger = self.core.logger
        if case .selfSigned(let output?) = configuration.tls, let pem = self.caCertificatePEM {
            try await NIOThreadPool.singleton.runIfActive {
                try PosixFile.writeAtomically(path: output, bytes: Array(pem.utf8), mode: 0o644)
            }
            logger.info("Wrote the emulator CA certificate", metadata: ["file.path": "\(output)"])
        }
        var acceptedLog: AcceptedLog?
        if let path = configuration.acceptedLogPath {
            acceptedLog = try await AcceptedLog.open(path: path)
            self.core.acceptedLog.withLock { $0 = acceptedLog }
        }
        defer {
            self.core.acceptedLog.withLock { $0 = nil }
        }

        let core = self.core
        let application = Application(
            responder: EmulatorResponder(core: core),
            server: self.serverBuilder(),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "uplink-iotcore-emulator"
            ),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                core.state.withLock { state in
                    state.lifecycle = .listening(port: port)
                    state.resumeWaiters(with: .success(port))
                }
                logger.info(
                    "IoT-Core emulator listening",
                    metadata: [
                        "net.host": "\(configuration.host)", "net.port": "\(port)",
                        "tls": "\(self.tlsConfiguration != nil)", "devices": "\(configuration.devices.count)",
                    ]
                )
            },
            logger: logger
        )
        // A group of its own, so `shutdownGracefully()` can trigger a graceful shutdown of the application
        // (a parent group's graceful shutdown reaches it too, as groups nest).
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [application], logger: logger)
        )
        let shutdownRequested = self.core.state.withLock { state in
            state.serviceGroup = serviceGroup
            return state.shutdownRequested
        }
        do {
            if !shutdownRequested {
                try await serviceGroup.run()
            }
        } catch {
            await acceptedLog?.close()
            throw error
        }
        await acceptedLog?.close()
    }

    /// Stops serving: open connections finish their requests, then ``run()`` returns. Safe to call before
    /// `run()` (which then returns at once), during start-up, or more than once.
    public func shutdownGracefully() async {
        let serviceGroup = self.core.state.withLock { state in
            state.shutdownRequested = true
            return state.serviceGroup
        }
        await serviceGroup?.triggerGracefulShutdown()
    }

    /// Marks the emulator stopped and fails the callers still waiting for it to listen.
    private func finish(_ error: EmulatorError) {
        self.core.state.withLock { state in
            state.serviceGroup = nil
            state.lifecycle = .stopped(error)
            state.resumeWaiters(with: .failure(error))
        }
    }

    /// HTTP/1.1 (over TLS unless disabled), behind the connection-refusing wrapper.
    private func serverBuilder() -> HTTPServerBuilder {
        let tlsConfiguration = self.tlsConfiguration
        let core = self.core
        return HTTPServerBuilder { responder in
            let http = HTTP1Channel(responder: responder, configuration: .init(idleTimeout: .seconds(60)))
            if let tlsConfiguration {
                return RefusingChildChannel(
                    base: try TLSChannel(http, tlsConfiguration: tlsConfiguration),
                    shouldRefuse: { core.shouldRefuseConnection() }
                )
            }
            return RefusingChildChannel(base: http, shouldRefuse: { core.shouldRefuseConnection() })
        }
    }

    private static func serverTLSConfiguration(
        certificateChain: [NIOSSLCertificate],
        privateKey: NIOSSLPrivateKey
    ) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) },
            privateKey: .privateKey(privateKey)
        )
        tls.minimumTLSVersion = .tlsv12
        return tls
    }

    /// The bound port once the emulator listens. Waits while it starts; throws if it stopped or failed
    /// before listening, or if the calling task is cancelled.
    public func waitUntilReady() async throws -> Int {
        let id = self.core.state.withLock { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
                self.core.state.withLock { state in
                    switch state.lifecycle {
                    case .listening(let port):
                        continuation.resume(returning: port)
                    case .stopped(let error):
                        continuation.resume(throwing: error)
                    case .idle, .starting:
                        if Task.isCancelled {
                            continuation.resume(throwing: CancellationError())
                        } else {
                            state.readinessWaiters[id] = continuation
                        }
                    }
                }
            }
        } onCancel: {
            let waiter = self.core.state.withLock { $0.readinessWaiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// The messages accepted so far (at most `maxRetainedMessages` and `maxRetainedBytes` of bodies, oldest first).
    public func acceptedMessages() -> [AcceptedMessage] {
        self.core.acceptedMessages()
    }

    /// The faults currently injected.
    public var faults: EmulatorFaults {
        self.core.faults
    }

    /// Replaces the injected faults; takes effect for the next request or connection.
    public func setFaults(_ faults: EmulatorFaults) {
        self.core.setFaults(faults)
    }

    /// Counters of answers by RetCode, authentications, accepted messages and refused connections.
    public func statistics() -> EmulatorStatistics {
        self.core.statistics()
    }
}
