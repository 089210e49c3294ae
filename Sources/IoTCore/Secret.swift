/// A string that must never reach a log line, an error message or a debugger print-out.
///
/// `description`, `debugDescription` and string interpolation all print `<redacted>`, so a
/// `Secret` can sit inside configuration and credential values that are logged whole. Only the code that has
/// to put the value on the wire (the request signer, the authorization header) reads ``exposedValue``.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The value itself. Read it only where it goes on the wire.
    public let exposedValue: String

    /// Wraps `value`.
    public init(_ value: String) {
        self.exposedValue = value
    }

    /// Whether the value is empty; safe to log.
    public var isEmpty: Bool { exposedValue.isEmpty }

    /// Always `<redacted>`.
    public var description: String { "<redacted>" }

    /// Always `<redacted>`.
    public var debugDescription: String { "<redacted>" }

    // `dump()` and `String(reflecting:)` of an enclosing value walk children through the mirror; an empty
    // mirror keeps the raw value out of those too.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
