import Synchronization

/// The edges one producer sends into, replaceable while it runs: a reload rewires a component that keeps
/// running to the consumers of the new configuration without stopping it.
///
/// The fanout registers itself as a producer of each edge it holds, so an edge ends exactly when the last
/// fanout holding it lets go. Rewiring registers the new edges before releasing the old ones, so a consumer
/// that stays connected through the change never sees its input end.
public final class Fanout<E: Event>: Sendable {
    private struct State {
        var edges: [any EventEdge<E>] = []
        var finished = false
    }

    private let state = Mutex(State())

    /// A fanout over `edges`, registered as a producer of each.
    public init(_ edges: [any EventEdge<E>] = []) {
        replace(with: edges)
    }

    /// A fanout over edges whose producer count the caller already raised; ``finish()`` still lowers it.
    init(unregistered edges: [any EventEdge<E>]) {
        state.withLock { $0.edges = edges }
    }

    /// The edges now. Sending takes one snapshot per chunk; a chunk in flight while the edges change goes to
    /// the edges of its snapshot, and one sent to an edge that ended meanwhile counts as dropped there.
    public var edges: [any EventEdge<E>] { state.withLock { $0.edges } }

    /// Sends into `edges` from now on: new edges gain this producer first, then dropped ones lose it (and end
    /// if it was their last producer). Does nothing once the producer has finished.
    public func replace(with edges: [any EventEdge<E>]) {
        let released: [any EventEdge<E>] = state.withLock { state in
            guard !state.finished else { return [] }
            let old = state.edges
            for edge in edges where !old.contains(where: { $0 === edge }) { edge.addProducer() }
            state.edges = edges
            return old.filter { edge in !edges.contains(where: { $0 === edge }) }
        }
        for edge in released { edge.finishProducer() }
    }

    /// The producer is done: every edge loses it. Later calls and rewiring do nothing.
    public func finish() {
        let released: [any EventEdge<E>] = state.withLock { state in
            guard !state.finished else { return [] }
            state.finished = true
            defer { state.edges = [] }
            return state.edges
        }
        for edge in released { edge.finishProducer() }
    }
}
