#if canImport(Glibc)
import Glibc
#endif
// `struct stat` comes through CUplinkLinux's headers in some build orders (a clean build with the plugin
// C modules), and MemberImportVisibility then wants its module imported here.
import CUplinkLinux
import UplinkCore

/// `stdin`: frames standard input into raw events. At end of input the pipeline drains and exits 0.
public struct StdinSource: SourceStage {
    public typealias Output = RawEvent

    public static let options: [OptionSpec] = FramingOptions.specs()

    public static let descriptor = PluginDescriptor(
        type: "stdin", role: .source,
        summary: "Reads standard input, one event per line (or delimiter). Bytes are kept as bytes.",
        options: options, output: .kind(.raw)
    ) { context in
        let config = context.config
        let framing = FramingOptions.read(config)
        return .source(
            StdinSource(mode: framing.mode, maxFrameBytes: framing.maxFrameBytes, longFrames: framing.longFrames))
    }

    public var mode: LineFramer.Mode
    public var maxFrameBytes: Int
    public var longFrames: LineFramer.LongFramePolicy
    public var readSize = 65536

    public init(
        mode: LineFramer.Mode = .newline, maxFrameBytes: Int = 1 << 20,
        longFrames: LineFramer.LongFramePolicy = .truncate
    ) {
        self.mode = mode
        self.maxFrameBytes = maxFrameBytes
        self.longFrames = longFrames
    }

    public func run(context: ComponentContext, output: Outbox<RawEvent>) async throws {
        let input = StandardInput.open()
        defer { input.close() }
        var reader = FramedReader(
            fd: input.fd, origin: EventOrigin(sourceID: context.id, location: "stdin"),
            framer: LineFramer(mode: mode, maxFrameBytes: maxFrameBytes, longFrames: longFrames), readSize: readSize)
        var truncation = TruncationReporter()
        defer {
            truncation.report(
                total: reader.framer.truncatedFrames, limit: maxFrameBytes, logger: context.logger, final: true)
        }
        try await reader.run(output: output, metrics: context.metrics)
    }
}

/// Standard input on a descriptor of our own, non-blocking, without changing the shell's terminal:
/// O_NONBLOCK is a property of the open file description, so setting it on the inherited fd 0 would leave
/// the parent's terminal non-blocking after we exit.
struct StandardInput {
    let fd: Int32
    let restoreFlags: Int32?

    static func open() -> StandardInput {
        var status = stat()
        if fstat(0, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG {
            // Regular files never block; keep fd 0 and its offset.
            return StandardInput(fd: 0, restoreFlags: nil)
        }
        let own = Glibc.open("/proc/self/fd/0", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if own >= 0 { return StandardInput(fd: own, restoreFlags: nil) }
        let previous = AsyncFileDescriptor.setNonBlocking(0)
        return StandardInput(fd: 0, restoreFlags: previous)
    }

    func close() {
        IOReactor.shared.deregister(fd)
        if let restoreFlags { _ = fcntl(0, F_SETFL, restoreFlags) }
        if fd != 0 { _ = Glibc.close(fd) }
    }
}
