public import UplinkYAML

/// One configuration problem, located in its file. Problems are collected and reported together, as
/// Vector's two-phase validation does, so an operator fixes a file in one pass.
public struct ConfigDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable { case error, warning }

    public var severity: Severity
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(_ severity: Severity, file: String, mark: YAMLMark, message: String) {
        self.severity = severity
        self.file = file
        self.line = mark.line
        self.column = mark.column
        self.message = message
    }

    /// The position of a problem with the whole file (it cannot be read): no line, no column.
    public static let wholeFile = YAMLMark(line: 0, column: 0)

    /// Whether the problem has a place in the file; one without (the file cannot be read) names the file in
    /// its message.
    public var isLocated: Bool { line > 0 }

    public var description: String {
        isLocated ? "\(file):\(line):\(column): \(severity.rawValue): \(message)" : "uplink: \(message)"
    }
}

/// Every error found while loading or validating a configuration.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [ConfigDiagnostic]

    public init(_ diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = diagnostics
    }

    public var errors: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .error } }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Collects diagnostics while a configuration is read. Used synchronously by one loader at a time.
public final class DiagnosticCollector {
    public private(set) var diagnostics: [ConfigDiagnostic] = []

    public init() {}

    public func error(_ message: String, file: String, at mark: YAMLMark) {
        diagnostics.append(ConfigDiagnostic(.error, file: file, mark: mark, message: message))
    }

    public func warning(_ message: String, file: String, at mark: YAMLMark) {
        diagnostics.append(ConfigDiagnostic(.warning, file: file, mark: mark, message: message))
    }

    public func append(_ diagnostic: ConfigDiagnostic) { diagnostics.append(diagnostic) }

    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
}
