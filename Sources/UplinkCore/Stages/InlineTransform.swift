/// A transform whose work is a synchronous function of each chunk (no timers, no waiting, one output), so the
/// runtime may run it in its producer's task instead of a task of its own: a "fused" stage (``InlineEdge``).
///
/// The stage builds a ``ChunkProcessor`` holding its per-run state; `run` (given here) is the loop over an
/// ``Inbox`` that the stage uses when it is not fused, so fused or not, the same code handles every chunk.
/// What the stage does with acknowledgements, drops and dead letters lives in its processor; the runtime keeps
/// its metrics, tap points and failures its own.
public protocol InlineTransform: TransformStage {
    associatedtype Processor: ChunkProcessor where Processor.Input == Input, Processor.Output == Output

    /// The state one instance of the stage keeps while it runs (counters, a dead-letter file).
    func makeProcessor(context: ComponentContext) throws -> Processor
}

/// One running instance of an ``InlineTransform``'s work: called for one chunk at a time, never concurrently.
public protocol ChunkProcessor: AnyObject {
    associatedtype Input: Event
    associatedtype Output: Event

    /// The chunk to send on, or nil when nothing goes on (the processor then answered the chunk's
    /// acknowledgements itself: every event was dropped or dead-lettered on purpose). A throw fails the stage.
    func process(_ chunk: consuming EventChunk<Input>) throws -> EventChunk<Output>?
    /// The input ended (or the instance is replaced): release what the run holds, log totals.
    func finish()
}

extension InlineTransform {
    public func run(context: ComponentContext, input: Inbox<Input>, output: Outbox<Output>) async throws {
        let processor = try makeProcessor(context: context)
        defer { processor.finish() }
        for await chunk in input {
            guard let produced = try processor.process(chunk) else { continue }
            try await output.send(consume produced)
        }
    }
}
