import NIOCore
import NIOHTTPTypes

/// Closes an API connection that holds a descriptor without using it: one whose request head is still
/// incomplete `api.header_timeout` after its first byte arrived (a slow-header client), or one with no request
/// in progress for `api.idle_timeout`. A response in progress (a tap stream) is never cut. It also tells the
/// ``ConnectionLimiter`` when the connection is busy, so only idle connections are evicted.
///
/// It sits after the HTTP codec, where request heads and response ends are visible; ``BytesObserver``, first
/// in the pipeline, tells it when raw bytes arrive, which the codec does not.
final class ConnectionDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The event ``BytesObserver`` sends along the pipeline before each read.
    struct BytesArrived {}

    /// First in the pipeline: announces each read before the HTTP decoder consumes it.
    final class BytesObserver: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.fireUserInboundEventTriggered(BytesArrived())
            context.fireChannelRead(data)
        }
    }

    private let limiter: ConnectionLimiter
    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var requestsInProgress = 0
    private var headerDeadline: Scheduled<Void>?
    private var idleDeadline: Scheduled<Void>?

    init(limiter: ConnectionLimiter, headerTimeout: Duration, idleTimeout: Duration) {
        self.limiter = limiter
        self.headerTimeout = TimeAmount(headerTimeout)
        self.idleTimeout = TimeAmount(idleTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armIdleDeadline(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelDeadlines()
    }

    func channelActive(context: ChannelHandlerContext) {
        armIdleDeadline(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelDeadlines()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is BytesArrived else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // The first bytes of a request: its head must now be complete within the header timeout.
        guard requestsInProgress == 0, headerDeadline == nil else { return }
        idleDeadline?.cancel()
        idleDeadline = nil
        headerDeadline = schedule(in: headerTimeout, context: context, closing: .headerTimeout)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            requestsInProgress += 1
            cancelDeadlines()
            limiter.requestStarted(on: context.channel)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            // An error answer (a malformed request) can end a response whose head was never read.
            requestsInProgress = max(0, requestsInProgress - 1)
            limiter.requestEnded(on: context.channel)
            if requestsInProgress == 0 { armIdleDeadline(context) }
        }
        context.write(data, promise: promise)
    }

    private func armIdleDeadline(_ context: ChannelHandlerContext) {
        idleDeadline?.cancel()
        idleDeadline = schedule(in: idleTimeout, context: context, closing: .idleTimeout)
    }

    private func cancelDeadlines() {
        headerDeadline?.cancel()
        headerDeadline = nil
        idleDeadline?.cancel()
        idleDeadline = nil
    }

    private func schedule(
        in delay: TimeAmount, context: ChannelHandlerContext, closing reason: APIServerStatistics.CloseReason
    ) -> Scheduled<Void> {
        let statistics = limiter.statistics
        return context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            guard context.channel.isActive else { return }
            statistics.closed(reason)
            context.close(promise: nil)
        }
    }
}
