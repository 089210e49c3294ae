import HummingbirdCore
import Logging
import NIOCore

/// Hummingbird's HTTP/1 child channel with the API's connection limits in front: the ``ConnectionLimiter``
/// decides at accept time, and ``ConnectionDeadlineHandler`` watches each admitted connection. A refused
/// connection is answered `503` and closed at once, so it holds its descriptor for no longer than that.
struct LimitedHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let limiter: ConnectionLimiter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            switch limiter.admit(channel) {
            case .admitted, .admittedEvicting:
                try channel.pipeline.syncOperations.addHandler(ConnectionDeadlineHandler.BytesObserver())
            case .refused:
                try channel.pipeline.syncOperations.addHandler(Refusal())
            }
        } catch {
            return channel.close().flatMapThrowing { throw error }
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }

    /// Answers 503 as soon as the connection is active, closes it, and swallows whatever the client sent, so
    /// the HTTP handler behind never sees a request.
    final class Refusal: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        static let body =
            #"{"error":"too many API connections in progress (api.max_connections); try again later"}"# + "\n"
        static let answer =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body

        func channelActive(context: ChannelHandlerContext) {
            let buffer = context.channel.allocator.buffer(string: Self.answer)
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
                loopBound.value.close(promise: nil)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }
}
