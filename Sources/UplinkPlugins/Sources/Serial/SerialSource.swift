import CUplinkLinux
import Logging
import Synchronization
import UplinkFileSystem
import UplinkCore

/// `serial`: reads frames from a serial port (raw termios, opened exclusively), reconnecting with back-off when
/// the device goes away, through a bounded buffer so a slow pipeline never stops reading the line.
///
/// Options: `device` (required; a path or symbolic link), `baud` (9600; any standard rate up to 4000000),
/// `data_bits` (8), `parity` (`none` | `even` | `odd`), `stop_bits` (1), `flow_control` (`none` | `rtscts` |
/// `xonxoff`), `delimiter` (`\n`; `\r\n` lines work with it), `frame_bytes` (fixed-length frames instead),
/// `max_frame_bytes` (64KiB), `long_frames` (`truncate` | `split`), `buffer` (`max_events` 10000, `when_full`
/// `drop_oldest` | `drop_newest` | `block`), `reconnect_delay` (500ms), `max_reconnect_delay` (30s).
public struct SerialSource: SourceStage {
    public typealias Output = RawEvent

    static let bufferOptions: [OptionSpec] = [
        OptionSpec("max_events", .int, default: "10000", "frames held while the pipeline is slower than the line"),
        OptionSpec(
            "when_full", .enumeration(OverflowPolicy.allCases.map(\.rawValue)), default: "drop_oldest",
            "drop_oldest / drop_newest discard frames (counted); block stops reading (the device or the kernel then drops)"
        ),
    ]

    static let options: [OptionSpec] =
        [
            OptionSpec(
                "device", .string, required: true,
                "the serial device, for example /dev/ttyUSB0 or a /dev/serial/by-id link"),
            OptionSpec("baud", .int, default: "9600", "line speed: a standard rate from 50 to 4000000"),
            OptionSpec("data_bits", .int, default: "8", "5, 6, 7 or 8"),
            OptionSpec(
                "parity", .enumeration(SerialLineSettings.Parity.allCases.map(\.rawValue)), default: "none",
                "parity bit"),
            OptionSpec("stop_bits", .int, default: "1", "1 or 2"),
            OptionSpec(
                "flow_control", .enumeration(SerialLineSettings.FlowControl.allCases.map(\.rawValue)), default: "none",
                "hardware (RTS/CTS) or software (XON/XOFF) flow control"),
        ] + FramingOptions.specs(maxName: "max_frame_bytes", maxDefault: "64KiB", policyName: "long_frames")
        + [
            OptionSpec("frame_bytes", .size, "fixed-length binary frames of this many bytes instead of delimited ones"),
            OptionSpec(
                "buffer", .mapping(bufferOptions),
                "the bounded buffer between the line and the pipeline: { max_events: 10000, when_full: drop_oldest | drop_newest | block }"
            ),
            OptionSpec(
                "reconnect_delay", .duration, default: "500ms",
                "first wait before reopening a device that went away; doubles up to max_reconnect_delay"),
            OptionSpec("max_reconnect_delay", .duration, default: "30s", "longest wait between reopening attempts"),
        ]

    public static let descriptor = PluginDescriptor(
        type: "serial", role: .source,
        summary: "Reads lines or fixed-length frames from a serial port; reconnects when the device comes back.",
        options: options, output: .kind(.raw)
    ) { context in
        .source(SerialSource(settings: Settings.read(context.config)))
    }

    struct Settings: Sendable {
        var device = ""
        var line = SerialLineSettings()
        var framing = FramingOptions(mode: .newline, maxFrameBytes: 64 * 1024, longFrames: .truncate)
        var bufferEvents = 10_000
        var whenFull = OverflowPolicy.dropOldest
        var reconnectDelay: Duration = .milliseconds(500)
        var maxReconnectDelay: Duration = .seconds(30)

        static func read(_ config: ConfigReader) -> Settings {
            var settings = Settings()
            settings.device = config.string("device") ?? ""
            if config.contains("device") && settings.device.isEmpty {
                config.error("option 'device' must not be empty", at: "device")
            }
            let baud = config.int("baud", default: 9600)
            if SerialLineSettings.standardRates[baud] == nil {
                let rates = SerialLineSettings.standardRates.keys.sorted().map(String.init).joined(separator: ", ")
                config.error("option 'baud' must be a standard rate (\(rates)), got \(baud)", at: "baud")
            } else {
                settings.line.baud = baud
            }
            settings.line.dataBits = config.int("data_bits", default: 8, range: 5...8)
            settings.line.parity = config.enumeration("parity", default: .none)
            let stopBits = config.int("stop_bits", default: 1)
            if stopBits != 1 && stopBits != 2 {
                config.error("option 'stop_bits' must be 1 or 2, got \(stopBits)", at: "stop_bits")
            } else {
                settings.line.stopBits = stopBits
            }
            settings.line.flowControl = config.enumeration("flow_control", default: .none)
            settings.framing = FramingOptions.read(
                config, maxName: "max_frame_bytes", maxDefault: 64 * 1024, policyName: "long_frames")
            if let length = config.size("frame_bytes") {
                if config.contains("delimiter") {
                    config.error(
                        "options 'frame_bytes' and 'delimiter' exclude each other: frames are either fixed-length or delimited",
                        at: "frame_bytes")
                } else if length < 1 || length > settings.framing.maxFrameBytes {
                    config.error(
                        "option 'frame_bytes' must be between 1 and max_frame_bytes (\(settings.framing.maxFrameBytes))",
                        at: "frame_bytes")
                } else {
                    settings.framing.mode = .fixedLength(length)
                }
            }
            if let buffer = config.nested("buffer") {
                buffer.finish()
                settings.bufferEvents = buffer.int("max_events", default: 10_000, range: 1...10_000_000)
                settings.whenFull = buffer.enumeration("when_full", default: .dropOldest)
            }
            settings.reconnectDelay = config.duration("reconnect_delay", default: .milliseconds(500))
            settings.maxReconnectDelay = config.duration("max_reconnect_delay", default: .seconds(30))
            if settings.reconnectDelay <= .zero {
                config.error("option 'reconnect_delay' must be more than 0", at: "reconnect_delay")
            }
            if settings.maxReconnectDelay < settings.reconnectDelay {
                config.error(
                    "option 'max_reconnect_delay' must not be less than 'reconnect_delay'", at: "max_reconnect_delay")
            }
            return settings
        }
    }

    let settings: Settings
    /// Connection counters, readable while the source runs.
    public let statistics = SerialStatistics()

    init(settings: Settings) {
        self.settings = settings
    }

    public func run(context: ComponentContext, output: Outbox<RawEvent>) async throws {
        // The line cannot be paused: the reader only ever waits on this buffer (and only with `block`).
        let buffer = EventChannel<RawEvent>(capacity: settings.bufferEvents, overflowPolicy: settings.whenFull)
        buffer.addProducer()
        let statistics = self.statistics
        context.metrics.addReporter { statistics.componentReport() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { buffer.finishProducer() }
                try await readLoop(context: context, buffer: buffer)
            }
            group.addTask {
                // At shutdown what is buffered is still forwarded, as far as downstream has room.
                while let chunk = await buffer.next() { try await output.send(chunk) }
            }
            while try await group.next() != nil {}
        }
    }

    /// Opens the device, reads frames into `buffer`, and reopens it with back-off whenever it goes away.
    private func readLoop(context: ComponentContext, buffer: EventChannel<RawEvent>) async throws {
        let logger = context.logger
        let origin = EventOrigin(sourceID: context.id, location: settings.device)
        var backoff = Backoff(initial: settings.reconnectDelay, maximum: settings.maxReconnectDelay)
        var offset: Int64 = 0
        var outage: SerialPortError.Code? = nil
        var drops = DropCounter()
        var truncation = TruncationReporter()
        var truncatedFrames = 0
        defer {
            truncation.report(
                total: truncatedFrames, limit: settings.framing.maxFrameBytes, logger: logger, final: true)
            drops.report(buffer.droppedEvents, metrics: context.metrics, logger: logger, final: true)
        }
        while true {
            try Task.checkCancellation()
            let fd: Int32
            do {
                fd = try SerialPort.open(settings.device, settings: settings.line)
            } catch {
                // Logged once per outage, not per attempt.
                if outage != error.code {
                    outage = error.code
                    logger.error(
                        error.code == .busy
                            ? "serial device is in use by another process; retrying"
                            : "cannot open serial device; retrying",
                        metadata: ["serial.device": "\(settings.device)", "error": "\(error)"])
                    context.metrics.error()
                }
                try await Task.sleep(for: backoff.next())
                continue
            }
            let connections = statistics.connected()
            if connections > 1 || outage != nil {
                logger.info(
                    "serial device connected",
                    metadata: ["serial.device": "\(settings.device)", "serial.reconnects": "\(connections - 1)"])
            } else {
                logger.info(
                    "serial device open",
                    metadata: ["serial.device": "\(settings.device)", "serial.baud": "\(settings.line.baud)"])
            }
            outage = nil
            let connectedAt = ContinuousClock.now
            var reader = FramedReader(fd: fd, origin: origin, framer: settings.framing.makeFramer())
            reader.framer.offset = offset
            var reason = "end of file"
            var overruns = UARTOverruns(fd: fd)
            do {
                defer { SerialPort.close(fd) }
                while true {
                    var (events, ended) = try await reader.next()
                    // At end of file the events are the frame the disconnect cut short: flagged.
                    if ended { for index in events.indices { events[index].truncated = true } }
                    if !events.isEmpty {
                        try await buffer.send(EventChunk(events))
                        drops.report(buffer.droppedEvents, metrics: context.metrics, logger: logger)
                        statistics.setBufferOverruns(buffer.droppedEvents)
                    }
                    overruns.sample(into: statistics)
                    if ended { break }
                }
            } catch let error as FileIO.Failure where SerialPort.isDisconnect(error.code) {
                reason = "\(error)"
                // The frame cut short by the disconnect is still data: sent, flagged as truncated.
                var events: [RawEvent] = []
                reader.framer.flush(timestamp: currentTimeMillis(), into: &events)
                for index in events.indices { events[index].truncated = true }
                if !events.isEmpty { try await buffer.send(EventChunk(events)) }
            }
            offset = reader.framer.offset
            truncatedFrames += reader.framer.truncatedFrames
            truncation.report(total: truncatedFrames, limit: settings.framing.maxFrameBytes, logger: logger)
            statistics.disconnected()
            logger.warning(
                "serial device disconnected; reconnecting",
                metadata: ["serial.device": "\(settings.device)", "reason": "\(reason)"])
            outage = .missing
            try await Task.sleep(for: backoff.next(healthyFor: ContinuousClock.now - connectedAt))
        }
    }
}

/// How often the serial device was opened and lost, and how many characters were lost on the way in.
public final class SerialStatistics: Sendable {
    private let connections = Atomic(0)
    private let disconnections = Atomic(0)
    private let kernelOverruns = Atomic(0)
    private let bufferOverruns = Atomic(0)

    public init() {}

    /// Characters the UART driver lost (hardware FIFO and tty buffer overruns) while the source had the port
    /// open; stays 0 on devices without counters (ptys, USB CDC ACM).
    public var kernelOverrunCount: Int { kernelOverruns.load(ordering: .relaxed) }
    /// Frames dropped because the pipeline was slower than the line and the bounded buffer was full.
    public var bufferOverrunCount: Int { bufferOverruns.load(ordering: .relaxed) }

    func addKernelOverruns(_ count: Int) { kernelOverruns.add(count, ordering: .relaxed) }
    func setBufferOverruns(_ count: Int) { bufferOverruns.store(count, ordering: .relaxed) }

    /// `uplink_serial_reconnects_total`, `uplink_serial_disconnects_total`, `uplink_serial_overruns_total`
    /// (`where`: `uart` for the driver's counters, `buffer` for the source's own buffer).
    func componentReport() -> ComponentReport {
        ComponentReport(samples: [
            MetricSample(
                name: "uplink_serial_reconnects_total", help: "Times the serial device was opened again after the first.",
                value: .counter(Double(reconnectCount))),
            MetricSample(
                name: "uplink_serial_disconnects_total", help: "Times the serial device went away.",
                value: .counter(Double(disconnectCount))),
            MetricSample(
                name: "uplink_serial_overruns_total", help: "Characters (uart) or frames (buffer) lost on the way in.",
                labels: [("where", "uart")], value: .counter(Double(kernelOverrunCount))),
            MetricSample(
                name: "uplink_serial_overruns_total", help: "Characters (uart) or frames (buffer) lost on the way in.",
                labels: [("where", "buffer")], value: .counter(Double(bufferOverrunCount))),
        ])
    }

    /// Successful opens (the first one included).
    public var connectionCount: Int { connections.load(ordering: .relaxed) }
    /// Opens after the first: reconnects.
    public var reconnectCount: Int { max(0, connectionCount - 1) }
    public var disconnectCount: Int { disconnections.load(ordering: .relaxed) }

    func connected() -> Int { connections.add(1, ordering: .relaxed).newValue }
    func disconnected() { disconnections.add(1, ordering: .relaxed) }
}

/// Moves the bounded buffer's drop count into the component's metrics; warns on the first drop and summarises
/// at the end.
struct DropCounter {
    private var counted = 0
    private var warned = false

    mutating func report(_ total: Int, metrics: ComponentMetrics, logger: Logger, final: Bool = false) {
        if total > counted {
            metrics.dropped(total - counted, reason: .channelFull)
            counted = total
            if !warned {
                warned = true
                logger.warning(
                    "the pipeline is slower than the line; frames are being dropped",
                    metadata: ["frames.dropped": "\(total)"])
            }
        }
        if final && counted > 0 {
            logger.warning("frames dropped by the full buffer", metadata: ["frames.dropped": "\(counted)"])
        }
    }
}

/// Reads the UART driver's overrun counters at most once a second while the port is open, adding what is new
/// since the port was opened (the driver's counters live as long as the port).
struct UARTOverruns {
    let fd: Int32
    private var last: Int?
    private var lastSample = ContinuousClock.now

    init(fd: Int32) {
        self.fd = fd
        last = Self.read(fd)
    }

    mutating func sample(into statistics: SerialStatistics) {
        guard last != nil, ContinuousClock.now - lastSample >= .seconds(1) else { return }
        lastSample = .now
        guard let current = Self.read(fd), let previous = last else { return }
        if current > previous { statistics.addKernelOverruns(current - previous) }
        last = current
    }

    static func read(_ fd: Int32) -> Int? {
        var overrun = 0
        var bufferOverrun = 0
        guard uplink_serial_overruns(fd, &overrun, &bufferOverrun) == 0 else { return nil }
        return overrun + bufferOverrun
    }
}
