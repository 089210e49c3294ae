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
///
/// One token has one answer, so a token must have one holder that answers for it. Where the same events go to
/// several holders that answer on their own (the branches of a fan-out, the outputs of a `route`, the requests
/// a sink makes of one chunk, the batches or windows one chunk's records join), each holder gets a
/// ``share()``: the events count as delivered only when every share was, and a share dropped (a branch still
/// holding it at shutdown) or failed decides the whole. Sharing the token object itself would let the first
/// holder's `delivered` stand for the others, and a file tail would checkpoint past lines one branch never sent.
public final class Acknowledgement: Sendable {
    private let status = Atomic<Int>(DeliveryStatus.dropped.rawValue)
    /// Set once the token was cut or shared: its parts or shares answer for it, and it no longer answers itself
    /// (its holder only passes it on), unless someone resolves it explicitly.
    private let handedOver = Atomic<Bool>(false)
    /// The answers of the shares of a token without a range (``Vote`` bits), combined when it finishes.
    private let votes = Atomic<UInt8>(0)
    /// The token a share of a token without a range answers to (kept alive until every share has finished).
    private let parent: Acknowledgement?
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
        parent = nil
    }

    /// A token for the positions `range` of its source (for a file, the bytes of the chunk's events). Without a
    /// cut, `onFinish` runs once with the whole range and `isLast`; once cut, once per finished run of positions.
    public init(range: Range<Int64>, onFinish: @escaping @Sendable (AcknowledgedRange) -> Void) {
        self.range = range
        onRange = onFinish
        self.onFinish = nil
        parent = nil
    }

    /// A part of a cut token.
    private init(part: Range<Int64>, ledger: AcknowledgementLedger) {
        range = part
        onRange = nil
        onFinish = nil
        parent = nil
        _ = self.ledger.storeIfNil(ledger)
    }

    /// A share of a token without a ledger: it answers to `parent` when it finishes.
    private init(shareOf parent: Acknowledgement) {
        range = nil
        onRange = nil
        onFinish = nil
        self.parent = parent
    }

    /// Whether ``split(at:)`` can cut this token (it covers a range of positions).
    public var isSplittable: Bool { range != nil }

    /// Records its holder's answer. `failed` is sticky; `delivered` wins over `dropped` (the holder's own answers:
    /// several holders each get a ``share()``).
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
    /// on its own, which answer for it from now on (its holder passes the parts on and lets it go). A position is
    /// reported once every token covering it has finished, with their combined answer (``Vote``).
    /// Nil when the token cannot be cut there (a whole token, or `position` not strictly inside its range):
    /// the caller then gives each holder a ``share()``.
    public func split(at position: Int64) -> (before: Acknowledgement, after: Acknowledgement)? {
        guard let range, range.lowerBound < position, position < range.upperBound, let ledger = makeLedger() else {
            return nil
        }
        ledger.cover(range)
        handedOver.store(true, ordering: .releasing)
        return (
            Acknowledgement(part: range.lowerBound..<position, ledger: ledger),
            Acknowledgement(part: position..<range.upperBound, ledger: ledger)
        )
    }

    /// A token for one more holder that answers on its own for the same events (a fan-out branch, a route's
    /// output, one of a sink's requests). Once shared, this token no longer answers itself: give a share to
    /// every holder, and make them all before any can finish, so that none answers alone for the others. It
    /// finishes when its last share has, `delivered` only if every share was. A range token's share covers
    /// the same range and can be cut like it.
    public func share() -> Acknowledgement {
        handedOver.store(true, ordering: .releasing)
        if let range, !range.isEmpty, let ledger = makeLedger() {
            ledger.cover(range)
            return Acknowledgement(part: range, ledger: ledger)
        }
        return Acknowledgement(shareOf: self)
    }

    /// Whether this token answers for (some of) `origin`'s events: it is `origin`, or a share or part of it (or of
    /// one of those). For checks and tests; nothing on the delivery path needs it.
    public func answers(for origin: Acknowledgement) -> Bool {
        if self === origin { return true }
        if let parent { return parent.answers(for: origin) }
        guard let ledger = ledger.load(), let originLedger = origin.ledger.load(), ledger === originLedger,
            let range, let whole = origin.range
        else { return false }
        return whole.lowerBound <= range.lowerBound && range.upperBound <= whole.upperBound
    }

    /// The ledger of this range token, made at its first cut or share (nil for a token without a range).
    private func makeLedger() -> AcknowledgementLedger? {
        if let existing = ledger.load() { return existing }
        guard let range, let onRange else { return nil }
        // Two holders cutting the same token at once: one ledger wins, both use it.
        return ledger.storeIfNil(AcknowledgementLedger(range: range, report: onRange))
    }

    /// A share finished with `status`.
    private func vote(_ status: DeliveryStatus) {
        votes.bitwiseOr(Vote.bit(status), ordering: .acquiringAndReleasing)
    }

    /// This token's answer: its own status, or, once cut or shared, what its shares answered (and its own status
    /// if someone resolved it explicitly); nil when it no longer answers at all (its parts in a ledger do).
    private var answer: DeliveryStatus? {
        let own = DeliveryStatus(rawValue: status.load(ordering: .acquiring)) ?? .dropped
        guard handedOver.load(ordering: .acquiring) else { return own }
        var bits = votes.load(ordering: .acquiring)
        if own != .dropped { bits |= Vote.bit(own) }
        return bits == 0 ? nil : Vote.combined(bits)
    }

    deinit {
        let answer = self.answer
        if let ledger = ledger.load(), let range {
            ledger.release(range, vote: answer)
        } else if let parent {
            parent.vote(answer ?? .dropped)
        } else if let range, let onRange {
            onRange(AcknowledgedRange(range: range, status: answer ?? .dropped, isLast: true))
        } else {
            onFinish?(answer ?? .dropped)
        }
    }
}

/// How the answers of several holders of the same events combine: `failed` if any failed (a final failure is
/// never hidden), else `dropped` if any dropped them (they must be sent again, so the source must not move past
/// them), else `delivered`.
private enum Vote {
    static func bit(_ status: DeliveryStatus) -> UInt8 { 1 << UInt8(status.rawValue) }

    static func combined(_ bits: UInt8) -> DeliveryStatus {
        if bits & bit(.failed) != 0 { return .failed }
        if bits & bit(.dropped) != 0 { return .dropped }
        return bits & bit(.delivered) != 0 ? .delivered : .dropped
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

/// The covers of a cut or shared token's range: for each run of positions, how many live tokens (the original,
/// its parts and shares) cover it, and the answers of those that finished (``Vote``; a token that was itself
/// cut or shared finishes without an answer). A run whose covers reach zero is reported, in one call per run, under the lock, so the last
/// report is always the one marked `isLast`. One entry per cut, found by binary search, and a release looks only
/// at the runs it covers: a chunk cut at every record (`max_events: 1`) costs O(log n) per cut, not O(n).
final class AcknowledgementLedger: Sendable {
    private struct Run {
        var end: Int64
        var covers: Int
        var votes: UInt8 = 0
        var reported = false

        var status: DeliveryStatus { Vote.combined(votes) }
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
        let whole = Run(end: range.upperBound, covers: 1)
        state = Mutex(State(start: range.lowerBound, runs: [whole], unreported: 1))
        self.report = report
    }

    /// One more token covers `range` (the two parts of a cut, together).
    func cover(_ range: Range<Int64>) {
        state.withLock { state in
            _ = state.forEachRun(in: range) { $0.covers += 1 }
        }
    }

    /// A token covering `range` finished with `vote` (nil: it was cut or shared and its parts answer); reports
    /// the runs no token covers any more (only runs inside `range` changed).
    func release(_ range: Range<Int64>, vote: DeliveryStatus?) {
        let bit = vote.map(Vote.bit) ?? 0
        state.withLock { state in
            let changed = state.forEachRun(in: range) { run in
                run.covers -= 1
                run.votes |= bit
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

    /// A ``Acknowledgement/share()`` of every token, for one more holder that answers on its own.
    public func shared() -> Acknowledgements {
        if tokens.isEmpty { return self }
        return Acknowledgements(tokens.map { $0.share() })
    }

    /// `count` independent holders' acknowledgements, all made before any is handed out (so none finishes
    /// before the last exists); this value itself when there is only one holder.
    public func shared(among count: Int) -> [Acknowledgements] {
        if count <= 1 || tokens.isEmpty { return Array(repeating: self, count: count) }
        return (0..<count).map { _ in shared() }
    }
}
