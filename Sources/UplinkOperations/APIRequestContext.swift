import Hummingbird
import NIOCore

/// The API's request context: Hummingbird's core context plus the connection's channel, on whose event loop a
/// tap stream paces its writes (see ``APIServer``).
struct APIRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}
