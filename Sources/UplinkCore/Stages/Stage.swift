/// A source produces events from the outside world: files, devices, processes.
///
/// `run` returns when the source is exhausted (stdin at EOF) or throws `CancellationError` when the pipeline
/// shuts down: sources are the stages that are stopped; everything downstream ends when its input ends, so
/// the pipeline drains in order.
public protocol SourceStage: Sendable {
    associatedtype Output: Event

    func run(context: ComponentContext, output: Outbox<Output>) async throws
}

/// A transform turns a stream of one event kind into a stream of another (or the same).
///
/// It must keep running until `input` ends, then flush what it holds and return.
public protocol TransformStage: Sendable {
    associatedtype Input: Event
    associatedtype Output: Event

    func run(context: ComponentContext, input: Inbox<Input>, output: Outbox<Output>) async throws
}

/// A sink delivers events and resolves their acknowledgements once it has a final answer.
///
/// It must keep running until `input` ends, then flush and return.
public protocol SinkStage: Sendable {
    associatedtype Input: Event

    func run(context: ComponentContext, input: Inbox<Input>) async throws
}

/// A stateless transform that maps each chunk to a chunk: implement ``transform(_:context:)`` and the loop,
/// acknowledgement hand-over and metrics come for free. Being synchronous, it is an ``InlineTransform``: behind a
/// single transform it runs fused, in that transform's task. A fused stage never calls `run`, so a type that
/// needs more than `transform` (setup per run, state, a final flush) implements ``InlineTransform`` and its
/// processor instead of overriding `run`.
public protocol ChunkTransform: InlineTransform {
    /// Called for each chunk; the acknowledgements of the input are carried to the output automatically.
    func transform(_ events: [Input], context: ComponentContext) -> [Output]
}

extension ChunkTransform {
    public func makeProcessor(context: ComponentContext) -> ChunkTransformProcessor<Self> {
        ChunkTransformProcessor(stage: self, context: context)
    }
}

/// A ``ChunkTransform``'s processor: no state but the stage.
public final class ChunkTransformProcessor<T: ChunkTransform>: ChunkProcessor {
    let stage: T
    let context: ComponentContext

    init(stage: T, context: ComponentContext) {
        self.stage = stage
        self.context = context
    }

    public func process(_ chunk: consuming EventChunk<T.Input>) -> EventChunk<T.Output>? {
        EventChunk(stage.transform(chunk.events, context: context), acknowledgements: chunk.acknowledgements)
    }

    public func finish() {}
}

/// A built component, type-erased so the topology can hold stages of any event types.
public enum BuiltStage: Sendable {
    case source(any SourceStage)
    case transform(any TransformStage)
    case sink(any SinkStage)

    var outputKind: EventKind? {
        switch self {
        case .source(let stage): return Self.outputKind(of: stage)
        case .transform(let stage): return Self.outputKind(of: stage)
        case .sink: return nil
        }
    }

    var inputKind: EventKind? {
        switch self {
        case .source: return nil
        case .transform(let stage): return Self.inputKind(of: stage)
        case .sink(let stage): return Self.inputKind(of: stage)
        }
    }

    /// The named outputs of a transform that has them (``NamedOutputStage``); nil when it sends to its default
    /// output.
    public var outputNames: [String]? {
        guard case .transform(let stage) = self, let named = stage as? any NamedOutputStage else { return nil }
        return named.outputNames
    }

    private static func outputKind<S: SourceStage>(of stage: S) -> EventKind { S.Output.kind }
    private static func outputKind<T: TransformStage>(of stage: T) -> EventKind { T.Output.kind }
    private static func inputKind<T: TransformStage>(of stage: T) -> EventKind { T.Input.kind }
    private static func inputKind<S: SinkStage>(of stage: S) -> EventKind { S.Input.kind }
}
