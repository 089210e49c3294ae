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
///
/// A token made with ``init(range:onFinish:)`` covers a range of its source's positions (a file's bytes) and can
/// be cut (``split(at:)``) where a stage hands its events to two outputs, as `batch` does when a chunk's records
/// fill one batch and start the next: each part then finishes on its own, and the source hears which range
/// finished with which status, so a delivered part does not wait for (or get sent again with) the other.
/// Cutting costs two small objects and a shared ledger per cut, nothing per event; a token never cut costs what
/// a whole token costs.
public final class Acknowledgement: Sendable {
    private let status = Atomic<Int>(DeliveryStatus.dropped.rawValue)
    /// The positions this token covers; nil for a whole token (it cannot be cut).
    private let range: Range<Int64>?
    private let onFinish: (@Sendable (DeliveryStatus) -> Void)?
    /// A range token's callback while it has never been cut (the ledger takes it over at the first cut).
    private let onRange: (@Sendable (AcknowledgedRange) -> Void)?
    /// Set at the first cut of a range token, and from the start for the parts of a cut token: where the
    /// covers of every part of the source's range are counted.
    private let ledger = AtomicLazyReference<AcknowledgementLedger>()

    public init(onFinish: @escaping @Sendable (DeliveryStatus) -> Void) {
        self.onFinish = onFinish
        range = nil
        onRange = nil
    }

    /// A token for the positions `range` of its source (for a file, the bytes of the chunk's events). Without a
    /// cut, `onFinish` runs once with the whole range and `isLast`; once cut, once per finished run of positions.
    public init(range: Range<Int64>, onFinish: @escaping @Sendable (AcknowledgedRange) -> Void) {
        self.range = range
        onRange = onFinish
        self.onFinish = nil
    }

    /// A part of a cut token.
    private init(part: Range<Int64>, ledger: AcknowledgementLedger) {
        range = part
        onRange = nil
        onFinish = nil
        _ = self.ledger.storeIfNil(ledger)
    }

    /// Whether ``split(at:)`` can cut this token (it covers a range of positions).
    public var isSplittable: Bool { range != nil }

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

    /// Cuts this token at `position`: two new tokens, for the positions before it and from it on, each finishing
    /// on its own. This token keeps covering its whole range while it lives (another branch of a fan-out may
    /// still hold it), so a position is reported only when every token covering it has finished, with the
    /// highest status among them (as for a shared token: `failed` sticks, `delivered` wins over `dropped`).
    /// Nil when the token cannot be cut there (a whole token, or `position` not strictly inside its range):
    /// the caller then shares the token, as before cuts existed.
    public func split(at position: Int64) -> (before: Acknowledgement, after: Acknowledgement)? {
        guard let range, range.lowerBound < position, position < range.upperBound else { return nil }
        let ledger: AcknowledgementLedger
        if let existing = self.ledger.load() {
            ledger = existing
        } else if let onRange {
            // Two branches cutting the same token at once: one ledger wins, both use it.
            ledger = self.ledger.storeIfNil(AcknowledgementLedger(range: range, report: onRange))
        } else {
            return nil
        }
        ledger.cover(range)
        return (
            Acknowledgement(part: range.lowerBound..<position, ledger: ledger),
            Acknowledgement(part: position..<range.upperBound, ledger: ledger)
        )
    }

    deinit {
        let final = DeliveryStatus(rawValue: status.load(ordering: .acquiring)) ?? .dropped
        if let ledger = ledger.load(), let range {
            ledger.release(range, status: final)
        } else if let range, let onRange {
            onRange(AcknowledgedRange(range: range, status: final, isLast: true))
        } else {
            onFinish?(final)
        }
    }
}

/// What a range token's callback hears: positions whose every token finished, and how.
public struct AcknowledgedRange: Sendable, Equatable {
    public var range: Range<Int64>
    public var status: DeliveryStatus
    /// Every position of the source's range has now been reported (the source's chunk is done).
    public var isLast: Bool

    public init(range: Range<Int64>, status: DeliveryStatus, isLast: Bool) {
        self.range = range
        self.status = status
        self.isLast = isLast
    }
}

/// The covers of a cut token's range: for each run of positions, how many live tokens (the original, which
/// still covers everything while any branch holds it, and the parts) cover it, and the highest status they
/// finished with. A run whose covers reach zero is reported, in one call per run, under the lock, so the last
/// report is always the one marked `isLast`. One entry per cut, found by binary search, and a release looks only
/// at the runs it covers: a chunk cut at every record (`max_events: 1`) costs O(log n) per cut, not O(n).
final class AcknowledgementLedger: Sendable {
    private struct Run {
        var end: Int64
        var covers: Int
        var status: DeliveryStatus
        var reported = false
    }

    private struct State {
        var start: Int64
        /// Contiguous from `start`, in order.
        var runs: [Run]
        var unreported: Int

        func start(of index: Int) -> Int64 { index > 0 ? runs[index - 1].end : start }

        /// The first run ending after `position` (`runs.count` when none does).
        func firstRun(endingAfter position: Int64) -> Int {
            var low = 0
            var high = runs.count
            while low < high {
                let middle = (low + high) / 2
                if runs[middle].end <= position { low = middle + 1 } else { high = middle }
            }
            return low
        }

        /// Makes `position` the boundary between two runs (no change when it already is one, or is outside).
        mutating func cut(at position: Int64) {
            guard position > start else { return }
            let index = firstRun(endingAfter: position)
            guard index < runs.count, position > start(of: index) else { return }
            var first = runs[index]
            first.end = position
            runs.insert(first, at: index)
            if !first.reported { unreported += 1 }
        }

        /// Applies `change` to the runs inside `range`, first cutting runs at its bounds; returns their indices.
        mutating func forEachRun(in range: Range<Int64>, _ change: (inout Run) -> Void) -> Range<Int> {
            cut(at: range.lowerBound)
            cut(at: range.upperBound)
            let first = firstRun(endingAfter: range.lowerBound)
            var index = first
            while index < runs.count && runs[index].end <= range.upperBound {
                change(&runs[index])
                index += 1
            }
            return first..<index
        }
    }

    private let state: Mutex<State>
    private let report: @Sendable (AcknowledgedRange) -> Void

    /// The ledger of a token covering `range`, which counts as the first cover.
    init(range: Range<Int64>, report: @escaping @Sendable (AcknowledgedRange) -> Void) {
        let whole = Run(end: range.upperBound, covers: 1, status: .dropped)
        state = Mutex(State(start: range.lowerBound, runs: [whole], unreported: 1))
        self.report = report
    }

    /// One more token covers `range` (the two parts of a cut, together).
    func cover(_ range: Range<Int64>) {
        state.withLock { state in
            _ = state.forEachRun(in: range) { $0.covers += 1 }
        }
    }

    /// A token covering `range` finished with `status`; reports the runs no token covers any more (only runs
    /// inside `range` changed).
    func release(_ range: Range<Int64>, status: DeliveryStatus) {
        state.withLock { state in
            let changed = state.forEachRun(in: range) { run in
                run.covers -= 1
                run.status = max(run.status, status)
            }
            var index = changed.lowerBound
            while index < changed.upperBound {
                let run = state.runs[index]
                guard run.covers == 0 && !run.reported else {
                    index += 1
                    continue
                }
                // Neighbouring runs finished now with the same status go out as one range.
                var last = index
                while last + 1 < changed.upperBound, state.runs[last + 1].covers == 0, !state.runs[last + 1].reported,
                    state.runs[last + 1].status == run.status
                {
                    last += 1
                }
                for finished in index...last { state.runs[finished].reported = true }
                state.unreported -= last - index + 1
                report(
                    AcknowledgedRange(
                        range: state.start(of: index)..<state.runs[last].end, status: run.status,
                        isLast: state.unreported == 0))
                index = last + 1
            }
        }
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

    /// Puts `replacement` in the place of `token` (the part of a cut token that this batch holds); false when
    /// `token` is not here.
    @discardableResult
    public mutating func replace(_ token: Acknowledgement, with replacement: Acknowledgement) -> Bool {
        guard let index = tokens.firstIndex(where: { $0 === token }) else { return false }
        tokens[index] = replacement
        return true
    }

    /// Resolves every token; the references are still held until this value is dropped.
    public func resolve(_ status: DeliveryStatus) {
        for token in tokens { token.resolve(status) }
    }
}
