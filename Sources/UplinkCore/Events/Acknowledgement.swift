import Synchronization

/// What happened to the events behind an acknowledgement.
public enum DeliveryStatus: Int, Sendable, Comparable {
    /// Nobody resolved them: they were dropped (for example at shutdown without a disk buffer).
    case dropped = 0
    /// A sink delivered them, or dead-lettered them (which is also a final answer).
    case delivered = 1
    /// A sink failed them for good.
    case failed = 2

    public static func < (lhs: DeliveryStatus, rhs: DeliveryStatus) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// An end-to-end acknowledgement for a group of events, typically one chunk a source sent.
///
/// Finalisation is drop-based, as Vector's event finalizers are: every chunk, batch or copy that carries the
/// events holds a reference; when the last reference goes away the source's callback runs with the combined
/// status. Fan-out therefore waits for every branch, and a batch that merges many chunks releases them all at
/// once. Sinks call ``resolve(_:)`` when they have a final answer; a token nobody resolved reports `.dropped`.
public final class Acknowledgement: Sendable {
    private let status = Atomic<Int>(DeliveryStatus.dropped.rawValue)
    private let onFinish: @Sendable (DeliveryStatus) -> Void

    public init(onFinish: @escaping @Sendable (DeliveryStatus) -> Void) {
        self.onFinish = onFinish
    }

    /// Records a sink's answer. `failed` is sticky; `delivered` wins over `dropped`.
    public func resolve(_ newStatus: DeliveryStatus) {
        var current = status.load(ordering: .relaxed)
        while newStatus.rawValue > current {
            let (exchanged, original) = status.compareExchange(
                expected: current, desired: newStatus.rawValue, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }

    deinit {
        onFinish(DeliveryStatus(rawValue: status.load(ordering: .acquiring)) ?? .dropped)
    }
}

/// The acknowledgements a chunk or batch carries. Usually empty (sources that need no acknowledgement) or one.
public struct Acknowledgements: Sendable {
    public private(set) var tokens: [Acknowledgement]

    public init(_ tokens: [Acknowledgement] = []) {
        self.tokens = tokens
    }

    public static var none: Acknowledgements { Acknowledgements() }

    public var isEmpty: Bool { tokens.isEmpty }

    public mutating func merge(_ other: Acknowledgements) {
        for token in other.tokens where !tokens.contains(where: { $0 === token }) {
            tokens.append(token)
        }
    }

    /// Resolves every token; the references are still held until this value is dropped.
    public func resolve(_ status: DeliveryStatus) {
        for token in tokens { token.resolve(status) }
    }
}
