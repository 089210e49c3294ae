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

    /// One holder cuts the chunk's token and another holds it whole (explicitly resolved); every position waits
    /// for both. (A fan-out gives each branch a share instead: see ``AcknowledgementShareTests``.)
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
        // Dropped by one branch, delivered by the other: not delivered (it must be sent again to the first).
        #expect(reports.all == [part(0..<30, .delivered), part(30..<100, .dropped, last: true)])
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

/// Shares (``Acknowledgement/share()``): the same events held by several holders that answer on their own.
@Suite struct AcknowledgementShareTests {
    private final class Heard: Sendable {
        let statuses = Mutex<[DeliveryStatus]>([])
        func token() -> Acknowledgement { Acknowledgement { status in self.statuses.withLock { $0.append(status) } } }
        var all: [DeliveryStatus] { statuses.withLock { $0 } }
    }

    /// Every combination of two holders' answers, for a whole token: delivered only when both delivered, a
    /// failure is never hidden, and a share nobody answered (dropped at a stop) holds the events back.
    @Test(arguments: [
        (DeliveryStatus?.some(.delivered), DeliveryStatus?.some(.delivered), DeliveryStatus.delivered),
        (.some(.delivered), nil, .dropped),
        (nil, .some(.delivered), .dropped),
        (.some(.delivered), .some(.failed), .failed),
        (.some(.failed), nil, .failed),
        (nil, nil, .dropped),
    ])
    func twoSharesOfAWholeTokenCombine(first: DeliveryStatus?, second: DeliveryStatus?, expected: DeliveryStatus) {
        let heard = Heard()
        var token: Acknowledgement? = heard.token()
        var shares: [Acknowledgement?] = Acknowledgements([token!]).shared(among: 2).map { $0.tokens[0] }
        token = nil
        if let first { shares[0]?.resolve(first) }
        shares[0] = nil
        #expect(heard.all.isEmpty, "the second share still holds the events")
        if let second { shares[1]?.resolve(second) }
        shares[1] = nil
        #expect(heard.all == [expected])
    }

    @Test func aRangeTokensSharesEachCutOnTheirOwn() throws {
        let reports = Reports()
        var token: Acknowledgement? = reports.token(0..<100)
        var a: Acknowledgement? = token?.share()
        var b: Acknowledgement? = token?.share()
        token = nil
        #expect(a?.isSplittable == true && b?.isSplittable == true)
        // Branch a cuts its share at 40 and delivers both parts; branch b delivers its share whole.
        var (a1, a2): (Acknowledgement?, Acknowledgement?) = try #require(a?.split(at: 40))
        a = nil
        a1?.resolve(.delivered)
        a1 = nil
        #expect(reports.all.isEmpty, "branch b still holds 0..<100")
        b?.resolve(.delivered)
        b = nil
        #expect(reports.all == [part(0..<40, .delivered)])
        // Branch a loses its second part at a stop: those positions are not delivered.
        a2 = nil
        #expect(reports.all == [part(0..<40, .delivered), part(40..<100, .dropped, last: true)])
    }

    /// A share of a share (a fan-out branch's chunk, split again into a sink's requests) answers to the first.
    @Test func sharesOfSharesAnswerToTheOriginal() {
        let heard = Heard()
        var token: Acknowledgement? = heard.token()
        var branch: Acknowledgement? = token?.share()
        var other: Acknowledgement? = token?.share()
        token = nil
        var requests: [Acknowledgement?] = [branch?.share(), branch?.share()]
        branch = nil
        let unrelated = requests.allSatisfy { request in request.map { !$0.answers(for: other!) } ?? false }
        #expect(unrelated, "a share of one branch does not answer for another branch's share")
        other?.resolve(.delivered)
        other = nil
        requests[0]?.resolve(.delivered)
        requests[0] = nil
        #expect(heard.all.isEmpty)
        requests[1]?.resolve(.delivered)
        requests[1] = nil
        #expect(heard.all == [.delivered])
    }

    /// A token resolved explicitly after it was shared still counts (a transform settling a failure for the
    /// whole chunk after it sent the chunk's parts on).
    @Test func anExplicitAnswerOnASharedTokenCounts() {
        let heard = Heard()
        var token: Acknowledgement? = heard.token()
        var share: Acknowledgement? = token?.share()
        token?.resolve(.failed)
        token = nil
        share?.resolve(.delivered)
        share = nil
        #expect(heard.all == [.failed])
    }

    @Test func aSingleHolderNeedsNoShare() {
        let heard = Heard()
        let token = heard.token()
        let acknowledgements = Acknowledgements([token])
        let one = acknowledgements.shared(among: 1)
        #expect(one.count == 1 && one[0].tokens[0] === token)
        let none = Acknowledgements.none.shared(among: 3)
        #expect(none.count == 3 && none.allSatisfy { $0.isEmpty })
    }
}
