import Synchronization
@testable import UplinkPlugins

/// A pipeline `stdin -> json -> t -> stdout` with `t`'s options in flow style; `t` is on line 5.
func pipeline(stage type: String, _ options: String) -> String {
    """
    sources:
      in: { type: stdin }
    transforms:
      wrap: { type: json, inputs: [in], mode: json }
      t: { type: \(type), inputs: [wrap], \(options) }
    sinks:
      out: { type: stdout, inputs: [t] }
    """
}

/// Wall-clock time a test sets by hand (Unix ms).
final class ManualClock: Sendable {
    private let time: Mutex<Int64>
    private let readCount = Mutex(0)

    init(_ start: Int64) { time = Mutex(start) }

    /// How many times a stage has read the time: a readiness signal for tests.
    var reads: Int { readCount.withLock { $0 } }

    func set(_ value: Int64) { time.withLock { $0 = value } }
    func advance(_ milliseconds: Int64) { time.withLock { $0 += milliseconds } }

    var clock: UnixClock {
        UnixClock {
            self.readCount.withLock { $0 += 1 }
            return self.time.withLock { $0 }
        }
    }
}
