import Dispatch
import Synchronization
import Testing
import UplinkCore

/// What a range token's source heard, in order.
private final class Reports: Sendable {
    private let heard = Mutex<[AcknowledgedRange]>([])

    func token(_ range: Range<Int64>) -> Acknowledgement {
        Acknowledgement(range: range) { [self] part in heard.withLock { $0.append(part) } }
    }

    var all: [AcknowledgedRange] { heard.withLock { $0 } }
}

private func part(_ range: Range<Int64>, _ status: DeliveryStatus, last: Bool = false) -> AcknowledgedRange {
    AcknowledgedRange(range: range, status: status, isLast: last)
}

/// Cutting an acknowledgement where a stage hands a chunk's events to two outputs (``Acknowledgement/split(at:)``):
/// each part finishes on its own, a position is reported once every token covering it has finished, and the
/// statuses combine as on a shared token.
@Suite struct AcknowledgementSplitTests {
    @Test func aTokenNeverCutReportsItsWholeRangeOnce() {
        let reports = Reports()
        var token: Acknowledgement? = reports.token(0..<100)
        token?.resolve(.delivered)
        token = nil
        #expect(reports.all == [part(0..<100, .delivered, last: true)])
    }

    @Test func thePartsOfACutTokenFinishOnTheirOwnInAnyOrder() throws {
        let reports = Reports()
        var token: Acknowledgement? = reports.token(0..<100)
        var (before, after): (Acknowledgement?, Acknowledgement?) = try #require(token?.split(at: 40))
        // The stage that cut it lets the original go: it no longer holds anything back.
        token = nil
        #expect(reports.all.isEmpty)
        // The second batch is delivered first; the first one is still in flight.
        after?.resolve(.delivered)
        after = nil
        #expect(reports.all == [part(40..<100, .delivered)])
        // The first batch is dropped (shutdown): its part is reported as such, last.
        before = nil
        #expect(reports.all == [part(40..<100, .delivered), part(0..<40, .dropped, last: true)])
    }

    @Test func aPartCutAgainReportsEachPieceAndFailedSticks() throws {
        let reports = Reports()
        var token: Acknowledgement? = reports.token(10..<100)
        var (first, rest): (Acknowledgement?, Acknowledgement?) = try #require(token?.split(at: 30))
        token = nil
        var (second, third): (Acknowledgement?, Acknowledgement?) = try #require(rest?.split(at: 70))
        rest = nil
        third?.resolve(.delivered)
        third = nil
        second?.resolve(.delivered)
        second?.resolve(.failed)
        second = nil
        first?.resolve(.delivered)
        first = nil
        #expect(
            reports.all == [part(70..<100, .delivered), part(30..<70, .failed), part(10..<30, .delivered, last: true)])
    }

    /// A fan-out: one branch cuts the chunk's token, the other holds it whole; every position waits for both.
    @Test func aBranchHoldingTheWholeTokenHoldsBackEveryPart() throws {
        let reports = Reports()
        var shared: Acknowledgement? = reports.token(0..<100)
        var (before, after): (Acknowledgement?, Acknowledgement?) = try #require(shared?.split(at: 50))
        before?.resolve(.delivered)
        before = nil
        after?.resolve(.delivered)
        after = nil
        #expect(reports.all.isEmpty, "the other branch still holds the whole chunk")
        shared?.resolve(.failed)
        shared = nil
        #expect(reports.all == [part(0..<100, .failed, last: true)])
    }

    @Test func bothBranchesCuttingAtDifferentPlacesReportWhereBothFinished() throws {
        let reports = Reports()
        var shared: Acknowledgement? = reports.token(0..<100)
        var (a1, a2): (Acknowledgement?, Acknowledgement?) = try #require(shared?.split(at: 30))
        var (b1, b2): (Acknowledgement?, Acknowledgement?) = try #require(shared?.split(at: 60))
        shared = nil
        a1?.resolve(.delivered)
        a1 = nil
        #expect(reports.all.isEmpty, "0..<30 is still held by the other branch's first part")
        b1?.resolve(.delivered)
        b1 = nil
        #expect(reports.all == [part(0..<30, .delivered)])
        b2?.resolve(.delivered)
        b2 = nil
        #expect(reports.all == [part(0..<30, .delivered)], "30..<100 is still held by the first branch")
        a2 = nil
        // Dropped by one branch, delivered by the other: delivered wins, as on a shared token.
        #expect(reports.all == [part(0..<30, .delivered), part(30..<100, .delivered, last: true)])
    }

    @Test func wholeTokensAndPositionsOutsideTheRangeAreNotCut() {
        let whole = Acknowledgement { _ in }
        #expect(!whole.isSplittable)
        #expect(whole.split(at: 5) == nil)
        let reports = Reports()
        let token = reports.token(10..<20)
        #expect(token.isSplittable)
        #expect(token.split(at: 10) == nil, "nothing before the cut")
        #expect(token.split(at: 20) == nil, "nothing after it")
        #expect(token.split(at: 3) == nil)
        let empty = reports.token(7..<7)
        #expect(empty.split(at: 7) == nil)
    }

    /// A chunk cut at every record (`max_events: 1`), parts answered in a scrambled order with mixed statuses:
    /// every position is reported once, with its part's status, the last report last.
    @Test func aChunkCutAtEveryRecordReportsEachPartOnce() throws {
        let reports = Reports()
        var token: Acknowledgement? = reports.token(0..<20_000)
        var parts: [(token: Acknowledgement?, status: DeliveryStatus?)] = []
        var rest = try #require(token)
        for cut in stride(from: 10, to: 20_000, by: 10) {
            let (before, after) = try #require(rest.split(at: Int64(cut)))
            parts.append((before, [DeliveryStatus.delivered, .failed, nil][cut % 3]))
            rest = after
        }
        parts.append((rest, .delivered))
        rest = Acknowledgement { _ in }
        token = nil
        // A fixed scramble (7919 is prime to the 2,000 parts): every part once, far from file order.
        for step in parts.indices {
            let index = step * 7919 % parts.count
            if let status = parts[index].status { parts[index].token?.resolve(status) }
            parts[index].token = nil
        }
        let heard = reports.all
        var status = [DeliveryStatus?](repeating: nil, count: 20_000)
        for report in heard {
            for position in report.range {
                #expect(status[Int(position)] == nil, "position \(position) reported twice")
                status[Int(position)] = report.status
            }
        }
        for (index, part) in parts.enumerated() {
            #expect(status[index * 10] == (part.status ?? .dropped), "part \(index)")
        }
        #expect(heard.filter(\.isLast).count == 1 && heard.last?.isLast == true)
    }

    /// Parts released on many threads at once: every position is reported exactly once, and the report marked
    /// last is the last one.
    @Test func concurrentReleasesReportEveryPositionOnce() throws {
        for round in 0..<50 {
            let reports = Reports()
            var token: Acknowledgement? = reports.token(0..<1000)
            var parts: [Acknowledgement] = []
            var rest = token!
            for cut in stride(from: 37, to: 1000, by: 37) {
                let (before, after) = try #require(rest.split(at: Int64(cut)))
                parts.append(before)
                rest = after
            }
            parts.append(rest)
            token = nil
            let count = parts.count
            let box = Mutex<[Acknowledgement?]>(parts)
            parts = []
            rest = Acknowledgement { _ in }
            DispatchQueue.concurrentPerform(iterations: count) { index in
                let taken = box.withLock { box -> Acknowledgement? in
                    defer { box[index] = nil }
                    return box[index]
                }
                if (index + round) % 3 != 0 { taken?.resolve(.delivered) }
            }
            let heard = reports.all
            var covered = [Int](repeating: 0, count: 1000)
            for report in heard {
                for position in report.range { covered[Int(position)] += 1 }
            }
            #expect(covered.allSatisfy { $0 == 1 }, "round \(round)")
            #expect(heard.filter(\.isLast).count == 1 && heard.last?.isLast == true, "round \(round)")
        }
    }
}
