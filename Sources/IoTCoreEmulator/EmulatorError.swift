/// An error of the emulator itself (not an IoT-Core answer, which is always a RetCode).
public struct EmulatorError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; extensible without breaking clients.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short, stable name usable as a metric label.
        public let name: String

        /// The configuration is unusable; the message lists every problem.
        public static let invalidConfiguration = Code(name: "invalid_configuration")
        /// Generating the self-signed certificates failed in libcrypto.
        public static let certificateGeneration = Code(name: "certificate_generation")
        /// Loading certificates or building the TLS context failed.
        public static let tlsConfiguration = Code(name: "tls_configuration")
        /// A file could not be written or opened.
        public static let fileIO = Code(name: "file_io")
        /// `run()` was called a second time.
        public static let alreadyRunning = Code(name: "already_running")
        /// The emulator stopped (or failed) before it was listening.
        public static let notListening = Code(name: "not_listening")

        public var description: String { self.name }
    }

    /// The kind of failure.
    public var code: Code
    /// What happened, for people.
    public var message: String
    /// The error that caused this one, if any.
    public var underlying: (any Error)?
    /// Where the error was raised.
    public var file: String
    /// Where the error was raised.
    public var line: Int

    /// Creates an error.
    public init(
        _ code: Code,
        _ message: String,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// A short description usable as a metric label.
    public var shortDescription: String { self.code.name }

    public var description: String {
        var text = "IoTCoreEmulator: \(self.code): \(self.message)"
        if let underlying { text += " (\(underlying))" }
        return text
    }
}
