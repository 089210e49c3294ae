import HummingbirdCore
import Logging
import NIOCore

/// Wraps Hummingbird's child-channel setup (TLS, HTTP/1) to emulate an unreachable service: while refusal is
/// active a freshly accepted TCP connection is closed before TLS starts, so the client sees a connection
/// failure (reset or EOF during the handshake) rather than an HTTP answer.
struct RefusingChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    /// The connection was refused; NIO drops a child channel whose setup fails, so this error goes nowhere.
    struct Refused: Error {}

    let base: Base
    /// Decides (and counts) at accept time.
    let shouldRefuse: @Sendable () -> Bool

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        if self.shouldRefuse() {
            // Failing the setup makes the server's accept loop drop the channel without handling it; closing
            // it first is what the client notices.
            return channel.close().flatMapThrowing { throw Refused() }
        }
        return self.base.setup(channel: channel, logger: logger)
    }

    func handle(value: Base.Value, logger: Logger) async {
        await self.base.handle(value: value, logger: logger)
    }
}
