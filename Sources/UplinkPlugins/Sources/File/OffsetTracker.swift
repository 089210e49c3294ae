/// The highest offset of a file up to which every chunk sent has been delivered: the offset a checkpoint may
/// record. Acknowledgements may arrive in any order; a range that was not delivered (dropped or failed) stops
/// the checkpoint there, so a restart reads it again (at-least-once).
///
/// Beyond `committed`, chunks acknowledged out of order form delivered ranges (``deliveredRanges``) that the
/// checkpoint also records, so that after a crash a restart skips them and sends again only what was not
/// acknowledged. Ranges carried over from such a checkpoint (`carried`) lie ahead of the read position until
/// the reader reaches and skips them (``skipCarried(_:)``).
///
/// A pure state machine: ``send(end:)`` when a chunk leaves, ``finish(_:delivered:)`` when its acknowledgement
/// comes back, or ``finish(_:part:delivered:)`` for each part of an acknowledgement a stage cut.
struct OffsetTracker: Sendable, Equatable {
    enum State: Sendable, Equatable { case inFlight, delivered, notDelivered }

    struct Pending: Sendable, Equatable {
        var sequence: UInt64
        var end: Int64
        var state: State
    }

    /// Every byte before this offset was delivered.
    private(set) var committed: Int64
    /// Chunks not yet folded into `committed`, in the order they were sent (ends never decrease).
    private(set) var pending: [Pending] = []
    private var nextSequence: UInt64 = 0
    /// Chunks whose acknowledgement has not come back.
    private(set) var inFlight = 0

    /// Delivered ranges recorded by an earlier run that the reader has not reached yet: sorted, disjoint, and
    /// after `committed` and every pending end.
    private(set) var carried: [Range<Int64>]

    init(committed: Int64, carried: [Range<Int64>] = []) {
        self.committed = committed
        self.carried = carried
    }

    /// The reader reached a carried range and skipped its bytes (delivered by the earlier run): it counts as
    /// delivered once everything sent before it is.
    mutating func skipCarried(_ range: Range<Int64>) {
        carried.removeAll { $0.upperBound <= range.upperBound }
        skip(to: range.upperBound)
    }

    /// Forgets the carried ranges (the file is not the content they describe any more).
    mutating func dropCarried() {
        carried = []
    }

    /// The delivered byte ranges after `committed`, in file order and merged where they touch: the ranges of
    /// chunks acknowledged after an earlier one that is still in flight or failed, then the carried ones.
    /// At most `limit`; the ones after are left out (they are read and sent again after a crash: duplicates,
    /// never loss). `omitted` is how many were left out.
    func deliveredRanges(limit: Int) -> (ranges: [Range<Int64>], omitted: Int) {
        var ranges: [Range<Int64>] = []
        var omitted = 0
        // The end of the last range seen, kept or left out: a range touching it extends it.
        var lastEnd: Int64 = -1
        func add(_ range: Range<Int64>) {
            defer { lastEnd = range.upperBound }
            if range.lowerBound == lastEnd {
                if omitted == 0 { ranges[ranges.count - 1] = ranges[ranges.count - 1].lowerBound..<range.upperBound }
            } else if ranges.count < limit {
                ranges.append(range)
            } else {
                omitted += 1
            }
        }
        var start = committed
        for entry in pending {
            if entry.state == .delivered && entry.end > start { add(start..<entry.end) }
            start = max(start, entry.end)
        }
        for range in carried where range.lowerBound >= start && !range.isEmpty { add(range) }
        return (ranges, omitted)
    }

    /// Records a chunk covering the file up to `end`; returns its sequence number for ``finish(_:delivered:)``.
    mutating func send(end: Int64) -> UInt64 {
        let sequence = nextSequence
        nextSequence += 1
        pending.append(Pending(sequence: sequence, end: end, state: .inFlight))
        inFlight += 1
        return sequence
    }

    /// Records bytes that produce no event (a discarded tail): they count as delivered once everything sent
    /// before them is.
    mutating func skip(to end: Int64) {
        if pending.isEmpty {
            committed = max(committed, end)
        } else {
            let sequence = nextSequence
            nextSequence += 1
            pending.append(Pending(sequence: sequence, end: end, state: .delivered))
        }
    }

    /// Records an acknowledgement; returns true when `committed` moved.
    @discardableResult
    mutating func finish(_ sequence: UInt64, delivered: Bool) -> Bool {
        guard let index = index(of: sequence), pending[index].state == .inFlight else { return false }
        pending[index].state = delivered ? .delivered : .notDelivered
        inFlight -= 1
        return fold()
    }

    /// Records the acknowledgement of `part` of a chunk whose acknowledgement was cut (at event boundaries): the
    /// chunk's entry is cut at the part's bounds, and the part takes its state; the rest stays in flight (one
    /// entry per piece, counted in ``inFlight``). Returns true when `committed` moved.
    @discardableResult
    mutating func finish(_ sequence: UInt64, part: Range<Int64>, delivered: Bool) -> Bool {
        guard let first = index(of: sequence) else { return false }
        // The piece still in flight that holds the part's end (parts never straddle pieces: a piece is what is
        // left between parts already finished). A chunk's pieces are in order of their ends: binary search.
        var low = first
        var high = pending.count
        while low < high {
            let middle = (low + high) / 2
            if pending[middle].sequence == sequence && pending[middle].end < part.upperBound {
                low = middle + 1
            } else {
                high = middle
            }
        }
        let index = low
        let start = index > 0 ? pending[index - 1].end : committed
        guard index < pending.count, pending[index].sequence == sequence, pending[index].state == .inFlight,
            part.upperBound > start
        else { return false }
        let end = pending[index].end
        var pieces: [Pending] = []
        if part.lowerBound > start {
            pieces.append(Pending(sequence: sequence, end: part.lowerBound, state: .inFlight))
        }
        pieces.append(Pending(sequence: sequence, end: part.upperBound, state: delivered ? .delivered : .notDelivered))
        if part.upperBound < end { pieces.append(Pending(sequence: sequence, end: end, state: .inFlight)) }
        pending.replaceSubrange(index...index, with: pieces)
        inFlight += pieces.count - 2
        return fold()
    }

    /// Folds the delivered pieces at the front into `committed`; true when it moved.
    private mutating func fold() -> Bool {
        let before = committed
        var folded = 0
        while folded < pending.count && pending[folded].state == .delivered {
            committed = max(committed, pending[folded].end)
            folded += 1
        }
        if folded > 0 { pending.removeFirst(folded) }
        if pending.count > 256 { compact() }
        return committed != before
    }

    /// True when a range was not delivered: the checkpoint stays before it for the rest of this run.
    var isStalled: Bool { pending.first?.state == .notDelivered }

    private func index(of sequence: UInt64) -> Int? {
        // Sequences never decrease (the pieces of a cut chunk share one): binary search for the first.
        var low = 0
        var high = pending.count
        while low < high {
            let middle = (low + high) / 2
            if pending[middle].sequence < sequence { low = middle + 1 } else { high = middle }
        }
        return low < pending.count && pending[low].sequence == sequence ? low : nil
    }

    /// Behind a stalled range, consecutive delivered chunks only need their last end: keeps memory bounded.
    private mutating func compact() {
        var result: [Pending] = []
        result.reserveCapacity(pending.count)
        for entry in pending {
            if entry.state == .delivered, let last = result.last, last.state == .delivered {
                result[result.count - 1].end = entry.end
                result[result.count - 1].sequence = entry.sequence
            } else {
                result.append(entry)
            }
        }
        pending = result
    }
}
