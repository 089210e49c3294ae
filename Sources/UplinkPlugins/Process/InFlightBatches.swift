import Synchronization
import UplinkCore

/// The batches a transform or sink host has taken from its inbox and the plugin has not acknowledged yet,
/// shared by the tasks that feed, write to and read from the plugin.
///
/// This is where "in-flight records are not lost" lives: a batch stays here, holding its input chunk's
/// acknowledgements, until the plugin acknowledges its id. When the plugin crashes, every batch still here is
/// sent again to the restarted one (outputs it had emitted for them are discarded, so none is forwarded
/// twice). It is also the back-pressure window: the inbox is not read while `window` batches are here.
final class InFlightBatches: Sendable {
    struct Batch: Sendable {
        let id: Int64
        /// The encoded `batch` message.
        let line: [UInt8]
        let count: Int
        /// Its own share of the acknowledgements of the chunk it was cut from (see ``Acknowledgement/share()``).
        let acknowledgements: Acknowledgements
        /// Where and when its first event came from, for the outputs made from it.
        let origin: EventOrigin?
        let timestamp: Int64
        /// The generation (plugin start) that was last sent this batch; 0 for none.
        var sentIn = 0
        /// Events the plugin emitted for it so far, forwarded when it acknowledges the batch.
        var outputs: [Value] = []
    }

    /// What the writer should do next.
    enum Work: Sendable {
        case send(Int64, [UInt8])
        /// The input ended and every batch was acknowledged.
        case shutdown
    }

    private struct State {
        var batches: [Batch] = []
        var nextID: Int64 = 1
        var inputEnded = false
        var generation = 0
        /// When the plugin must have answered (acknowledged something) by, while batches are outstanding.
        var deadline: ContinuousClock.Instant?
        /// Set while the host forwards outputs downstream: a full downstream channel is not the plugin hanging.
        var forwarding = false
        /// Batches acknowledged so far: progress, for the restart policy.
        var completed = 0
    }

    let window: Int
    let timeout: Duration
    private let state = Mutex(State())
    private let changes = ChangeSignal()
    private let clock = ContinuousClock()

    init(window: Int, timeout: Duration) {
        self.window = window
        self.timeout = timeout
    }

    var completedCount: Int { state.withLock { $0.completed } }
    var count: Int { state.withLock { $0.batches.count } }

    /// Adds a batch once the window has room; false when cancelled while waiting (the batch is not added).
    func admit(
        _ makeLine: (Int64) -> [UInt8], count: Int, acknowledgements: Acknowledgements,
        origin: EventOrigin?, timestamp: Int64
    ) async -> Bool {
        while true {
            let seen = changes.version
            let added = state.withLock { state -> Bool in
                guard state.batches.count < window else { return false }
                let id = state.nextID
                state.nextID += 1
                state.batches.append(
                    Batch(
                        id: id, line: makeLine(id), count: count, acknowledgements: acknowledgements,
                        origin: origin, timestamp: timestamp))
                return true
            }
            if added {
                changes.signal()
                return true
            }
            if Task.isCancelled { return false }
            await changes.wait(since: seen)
        }
    }

    /// The inbox ended: once every batch is acknowledged, the writer sends `shutdown`.
    func finishInput() {
        state.withLock { $0.inputEnded = true }
        changes.signal()
    }

    /// A new plugin process starts: everything still here is to be sent again, and what the previous one
    /// emitted for it is forgotten.
    func startGeneration(_ generation: Int) {
        state.withLock { state in
            state.generation = generation
            state.deadline = nil
            state.forwarding = false
            for index in state.batches.indices { state.batches[index].outputs = [] }
        }
        changes.signal()
    }

    /// Waits for the next batch this generation has not sent, or for the end; nil when cancelled.
    func nextWork(generation: Int) async -> Work? {
        while true {
            let seen = changes.version
            let work = state.withLock { state -> Work? in
                if let index = state.batches.firstIndex(where: { $0.sentIn != generation }) {
                    state.batches[index].sentIn = generation
                    if state.deadline == nil { state.deadline = clock.now + timeout }
                    return .send(state.batches[index].id, state.batches[index].line)
                }
                if state.inputEnded && state.batches.isEmpty { return .shutdown }
                return nil
            }
            if let work { return work }
            if Task.isCancelled { return nil }
            await changes.wait(since: seen)
        }
    }

    /// Adds outputs to batch `id` (or, without an id, to the oldest batch sent to this generation).
    /// False when there is no such batch (already acknowledged, or never sent).
    func append(_ outputs: [Value], to id: Int64?) -> Bool {
        state.withLock { state in
            let generation = state.generation
            let index =
                id.map { id in state.batches.firstIndex { $0.id == id && $0.sentIn == generation } }
                ?? state.batches.firstIndex { $0.sentIn == generation }
            guard let index else { return false }
            state.batches[index].outputs += outputs
            return true
        }
    }

    /// Removes batch `id` when the plugin acknowledges it, and marks the host busy forwarding its outputs
    /// (call ``forwarded()`` after). Nil when there is no such batch in this generation.
    func complete(_ id: Int64) -> Batch? {
        state.withLock { state -> Batch? in
            let generation = state.generation
            guard let index = state.batches.firstIndex(where: { $0.id == id && $0.sentIn == generation }) else {
                return nil
            }
            state.completed += 1
            state.forwarding = true
            return state.batches.remove(at: index)
        }
    }

    /// The host is listening to the plugin again: the window has room, and the plugin's time to answer the
    /// batches still outstanding starts now.
    func forwarded() {
        state.withLock { state in
            state.forwarding = false
            let generation = state.generation
            let outstanding = state.batches.contains { $0.sentIn == generation }
            state.deadline = outstanding ? clock.now + timeout : nil
        }
        changes.signal()
    }

    /// True when batches are outstanding and the plugin has not answered in time.
    func isOverdue() -> Bool {
        state.withLock { state in
            guard !state.forwarding, let deadline = state.deadline else { return false }
            return clock.now >= deadline
        }
    }

    /// Batches not yet acknowledged, for messages.
    var outstandingDescription: String {
        state.withLock { state in
            let events = state.batches.reduce(0) { $0 + $1.count }
            return "\(state.batches.count) batches (\(events) events)"
        }
    }
}
