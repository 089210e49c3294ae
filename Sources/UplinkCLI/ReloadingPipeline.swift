import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals
import UplinkCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs the pipeline and replaces it when the configuration changes: on SIGHUP, or when a config file's
/// modification time changes with `--watch`.
///
/// A new configuration is loaded and validated first; an invalid one is logged and the running pipeline keeps
/// going. A valid, different one is applied in place (``Pipeline/reconfigure(to:)``): unchanged components
/// keep running, changed ones are drained and replaced, new ones start, removed ones drain. Changes that
/// cannot be applied in place (global settings, plugins, a buffer or an edge's event kind) replace the whole
/// pipeline by draining it (sources stop, everything read is delivered, checkpoints and buffers are
/// written) and starting the new one. Either way nothing in flight is lost. Files whose bytes did not change
/// cause nothing.
final class ReloadingPipeline: Service, Sendable {
    let configs: [String]
    let initial: Topology
    let watch: Bool
    let logger: Logger
    /// When set, the first pipeline starts only once it fires (the API listener is bound).
    let startAfter: StopSignal?
    let abandoned: @Sendable (_ unfinished: @escaping @Sendable () -> [String]) -> Void
    private let running = Mutex<Pipeline?>(nil)

    /// The pipeline running now (nil between a drain and the next start), for the API and summaries.
    var current: Pipeline? { running.withLock { $0 } }

    init(
        configs: [String], initial: Topology, watch: Bool, logger: Logger, startAfter: StopSignal? = nil,
        abandoned: @escaping @Sendable (_ unfinished: @escaping @Sendable () -> [String]) -> Void = { _ in }
    ) {
        self.configs = configs
        self.initial = initial
        self.watch = watch
        self.logger = logger
        self.startAfter = startAfter
        self.abandoned = abandoned
    }

    /// Stops the running pipeline at once (a second signal).
    func stopNow() { current?.stopNow() }

    func run() async throws {
        if let startAfter {
            // Cancelled instead when the listener cannot bind: the group then ends with its error.
            await cancelWhenGracefulShutdown { await startAfter.wait() }
            try Task.checkCancellation()
            guard startAfter.isFired else { return }
        }
        var topology = initial
        var fingerprint = Self.fingerprint(configs)
        let reloads = ReloadRequests(configs: configs, watch: watch)
        while true {
            let pipeline = try Pipeline(topology: topology, logger: logger, abandoned: abandoned)
            running.withLock { $0 = pipeline }
            logger.info(
                "pipeline started",
                metadata: ["pipeline.components": "\(topology.nodes.count)", "pipeline.configs": "\(configs.joined(separator: ","))"])
            // Argument parsing, YAML and building the components are done: their pages go back (see StartupMemory).
            StartupMemory.releaseAfterStart()
            let next: (Topology, [UInt8])? = try await withThrowingTaskGroup(of: Optional<(Topology, [UInt8])>.self) { group in
                group.addTask {
                    try await pipeline.run()
                    return nil
                }
                group.addTask { [configs, logger, fingerprint] in
                    var fingerprint = fingerprint
                    for await _ in reloads.stream {
                        let current = Self.fingerprint(configs)
                        if current == fingerprint {
                            logger.info("configuration unchanged; nothing to reload")
                            continue
                        }
                        guard let replacement = loadTopology(paths: configs) else {
                            logger.error("the new configuration is invalid; keeping the running pipeline")
                            continue
                        }
                        let started = self.initial.global
                        if replacement.global.api != started.api || replacement.global.summaryInterval != started.summaryInterval {
                            logger.warning("'api' and 'summary_interval' are read at start-up; restart uplink to change them")
                        }
                        do {
                            switch try await pipeline.reconfigure(to: replacement) {
                            case .applied(let summary):
                                fingerprint = current
                                StartupMemory.releaseAfterStart()
                                logger.notice(
                                    "configuration reloaded; unchanged components kept running",
                                    metadata: [
                                        "reload.kept": "\(summary.kept.count)", "reload.replaced": "\(summary.replaced)",
                                        "reload.added": "\(summary.added)", "reload.removed": "\(summary.removed)",
                                    ])
                                continue
                            case .restartRequired(let reason):
                                logger.notice(
                                    "configuration changed; draining the running pipeline to start the new one",
                                    metadata: ["reload.restart_reason": "\(reason)"])
                                return (replacement, current)
                            }
                        } catch {
                            logger.error(
                                "the new configuration cannot be applied; keeping the running pipeline",
                                metadata: ["error": "\(error)"])
                        }
                    }
                    return nil
                }
                // Whichever ends first: the pipeline (input ended, shutdown, failure) or a valid reload.
                let first = try await group.next()!
                guard let replacement = first else {
                    group.cancelAll()
                    return nil
                }
                pipeline.stop()
                _ = try await group.next()
                return replacement
            }
            running.withLock { $0 = nil }
            guard let (replacement, newFingerprint) = next else { return }
            topology = replacement
            fingerprint = newFingerprint
        }
    }

    /// The configuration files' bytes, so a reload of identical files restarts nothing.
    static func fingerprint(_ configs: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        for path in configs {
            bytes.append(contentsOf: (try? FileIO.readFile(path, limit: 16 << 20)) ?? [])
            bytes.append(0)
        }
        return bytes
    }
}

/// SIGHUP, and with `--watch` a change of a config file's modification time, as one stream of requests.
struct ReloadRequests: Sendable {
    let stream: AsyncStream<Void>

    init(configs: [String], watch: Bool) {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.stream = stream
        let hangups = Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) { continuation.yield() }
        }
        let watcher: Task<Void, Never>? = watch ? Task {
            var last = configs.map(Self.modificationTime)
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let now = configs.map(Self.modificationTime)
                if now != last {
                    last = now
                    continuation.yield()
                }
            }
        } : nil
        continuation.onTermination = { _ in
            hangups.cancel()
            watcher?.cancel()
        }
    }

    static func modificationTime(_ path: String) -> Int64 {
        var status = stat()
        guard stat(path, &status) == 0 else { return -1 }
        return Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
    }
}
