/// Why a process plugin could not run, naming its command.
public struct ProcessPluginError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The command could not be started (not found, not executable).
        case cannotStart
        /// The plugin answered `init` with something other than an acceptable `hello` (or an error).
        case handshake
        /// It exited or closed its stdout while it had work.
        case crashed
        /// It did not answer within `timeout`.
        case timedOut
        /// It reported a fatal error.
        case fatal
        /// It crashed or hung `max_restarts + 1` times in a row without progress.
        case gaveUp
    }

    public var code: Code
    public var command: String
    public var message: String

    public init(_ code: Code, command: String, _ message: String) {
        self.code = code
        self.command = command
        self.message = message
    }

    /// Crashes and timeouts are worth a restart; a refused handshake or a missing program is not.
    var isRestartable: Bool { code == .crashed || code == .timedOut }

    public var description: String { "process plugin `\(command)`: \(message)" }
}
