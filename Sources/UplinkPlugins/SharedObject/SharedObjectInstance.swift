internal import CUplinkPlugin
import Logging
import UplinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// A failure of a shared-object plugin at run time (`create` refused, a fatal status), naming the file.
public struct SharedObjectCallError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var type: String
    public var message: String

    public var description: String { "plugin \(path) (\(type)): \(message)" }
}

/// One instance of a shared-object plugin for one component, with the thread all its callbacks run on.
final class SharedObjectInstance: Sendable {
    let library: LoadedLibrary
    private let thread: DedicatedThread
    private let instance: InstancePointer

    /// The plugin's instance pointer, opaque to the host. @unchecked: only the plugin dereferences it, and
    /// only on the instance's thread.
    private struct InstancePointer: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer?
    }

    /// What one call produced.
    struct CallResult: Sendable {
        var status: Int32
        var events: [any Event]
        /// Events the plugin tried to emit that were not valid (wrong kind, invalid UTF-8 or JSON).
        var invalid: Int
        var error: String
    }

    private init(library: LoadedLibrary, thread: DedicatedThread, instance: InstancePointer) {
        self.library = library
        self.thread = thread
        self.instance = instance
    }

    /// Calls the plugin's `create` with the component's options.
    static func create(
        _ library: LoadedLibrary, component: String, config: [(String, String)]
    ) async throws(SharedObjectCallError) -> SharedObjectInstance {
        let thread = DedicatedThread(purpose: "a shared-object plugin")
        let entries = config.map { [$0.0, $0.1] }
        let (instance, error) = await thread.run { () -> (InstancePointer, String) in
            let names = entries.map { strdup($0[0]) }
            let values = entries.map { strdup($0[1]) }
            let componentName = strdup(component)
            defer {
                for pointer in names + values { free(pointer) }
                free(componentName)
            }
            let cEntries = (0..<entries.count).map {
                uplink_config_entry(name: UnsafePointer(names[$0]), value: UnsafePointer(values[$0]))
            }
            var message = [CChar](repeating: 0, count: 512)
            let pointer = cEntries.withUnsafeBufferPointer { buffer -> UnsafeMutableRawPointer? in
                var cConfig = uplink_config(
                    component: UnsafePointer(componentName), entries: buffer.baseAddress, count: buffer.count)
                return library.plugin.pointee.create!(&cConfig, &message, message.count)
            }
            return (InstancePointer(pointer: pointer), cText(message))
        }
        guard instance.pointer != nil else {
            thread.stop()
            throw SharedObjectCallError(
                path: library.path, type: library.type,
                message: "create failed for component '\(component)'" + (error.isEmpty ? "" : ": \(error)"))
        }
        return SharedObjectInstance(library: library, thread: thread, instance: instance)
    }

    /// `process` with a batch (transforms and sinks).
    func process<E: Event>(
        _ events: [E], outputKind: EventKind?, origin: EventOrigin, timestamp: Int64
    ) async -> CallResult {
        let library = self.library
        let instance = self.instance
        return await thread.run {
            let collector = EmittedEvents(kind: outputKind ?? .record, origin: origin, defaultTimestamp: timestamp)
            var message = [CChar](repeating: 0, count: 512)
            let status = CEventMarshalling.withCEvents(events[...]) { pointer, count in
                collector.withEmitter { emitter in
                    library.plugin.pointee.process!(instance.pointer, pointer, count, emitter, &message, message.count)
                }
            }
            return CallResult(
                status: status, events: collector.events, invalid: collector.invalid, error: cText(message))
        }
    }

    /// `poll` (sources).
    func poll(outputKind: EventKind, origin: EventOrigin) async -> CallResult {
        let library = self.library
        let instance = self.instance
        return await thread.run {
            let collector = EmittedEvents(kind: outputKind, origin: origin, defaultTimestamp: currentTimeMillis())
            var message = [CChar](repeating: 0, count: 512)
            let status = collector.withEmitter { emitter in
                library.plugin.pointee.poll!(instance.pointer, emitter, &message, message.count)
            }
            return CallResult(
                status: status, events: collector.events, invalid: collector.invalid, error: cText(message))
        }
    }

    /// `flush`, when the plugin has one (at the end of the input).
    func flush(outputKind: EventKind?, origin: EventOrigin) async -> CallResult? {
        let library = self.library
        let instance = self.instance
        guard library.plugin.pointee.flush != nil else { return nil }
        return await thread.run {
            let collector = EmittedEvents(
                kind: outputKind ?? .record, origin: origin, defaultTimestamp: currentTimeMillis())
            var message = [CChar](repeating: 0, count: 512)
            let status = collector.withEmitter { emitter in
                library.plugin.pointee.flush!(instance.pointer, emitter, &message, message.count)
            }
            return CallResult(
                status: status, events: collector.events, invalid: collector.invalid, error: cText(message))
        }
    }

    /// `destroy`, then the thread ends. Call once, after the last call.
    func destroy() async {
        let library = self.library
        let instance = self.instance
        await thread.run { library.plugin.pointee.destroy!(instance.pointer) }
        thread.stop()
    }

    /// An error naming the file, for a fatal status.
    func failure(_ what: String, _ result: CallResult) -> SharedObjectCallError {
        SharedObjectCallError(
            path: library.path, type: library.type,
            message: "\(what) returned " + Self.statusName(result.status)
                + (result.error.isEmpty ? "" : ": \(result.error)"))
    }

    static func statusName(_ status: Int32) -> String {
        switch status {
        case Int32(UPLINK_OK): return "UPLINK_OK"
        case Int32(UPLINK_RETRY): return "UPLINK_RETRY"
        case Int32(UPLINK_ERROR): return "UPLINK_ERROR"
        case Int32(UPLINK_FATAL): return "UPLINK_FATAL"
        case Int32(UPLINK_DONE): return "UPLINK_DONE"
        default: return "an unknown status \(status)"
        }
    }

    /// Counts and logs (once per call) events a plugin emitted that were not valid.
    func reportInvalid(_ result: CallResult, context: ComponentContext) {
        guard result.invalid > 0 else { return }
        context.metrics.error(result.invalid)
        context.metrics.dropped(result.invalid, reason: .parseError)
        context.logger.warning(
            "shared-object plugin emitted events that are not valid; dropped",
            metadata: ["plugin.path": "\(library.path)", "plugin.invalid": "\(result.invalid)"])
    }
}

/// The statuses, for the stages (the C module stays internal to this file's module).
enum PluginStatus {
    static let ok = Int32(UPLINK_OK)
    static let retry = Int32(UPLINK_RETRY)
    static let error = Int32(UPLINK_ERROR)
    static let fatal = Int32(UPLINK_FATAL)
    static let done = Int32(UPLINK_DONE)
}

/// Delays between retries of a batch a plugin answered UPLINK_RETRY: doubling from 100 ms up to 30 s.
struct RetryDelay {
    private(set) var next: Duration = .milliseconds(100)

    mutating func take() -> Duration {
        defer { next = min(next * 2, .seconds(30)) }
        return next
    }
}
