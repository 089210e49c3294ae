/// Polls `condition` every 10 ms until it holds or `timeout` passes; whether it held. Tests wait for a signal (a
/// count, a flag) this way, with a bound, instead of sleeping a fixed time.
public func waitUntil(timeout: Duration = .seconds(10), _ condition: @Sendable () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
