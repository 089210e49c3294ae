import NIOCore
import NIOHTTP1
import NIOPosix
import UplinkCore

/// A small HTTP/1.1 client for the API listener, used by `uplink top` and `uplink tap` (plain HTTP on the
/// loopback; SwiftNIO, already in the binary for the server).
public struct APIClient: Sendable {
    public let host: String
    public let port: Int

    /// - Parameter address: `host:port` as in `api.address` (`127.0.0.1:8686`).
    public init(address: String) throws {
        guard let (host, port) = APIConfig.parseAddress(address), port > 0 else {
            throw APIClientError("--api must be host:port, for example 127.0.0.1:8686, not '\(address)'")
        }
        self.host = host
        self.port = port
    }

    /// A complete response.
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    /// GETs `path` and reads the whole body.
    public func get(_ path: String) async throws -> Response {
        var status = 0
        var body: [UInt8] = []
        try await stream(path) { head in
            status = head
        } onBody: { bytes in
            body += bytes
        }
        return Response(status: status, body: body)
    }

    /// GETs `path` and hands the status, then the body as it arrives; returns when the server ends it.
    public func stream(
        _ path: String, onHead: (Int) throws -> Void, onBody: ([UInt8]) async throws -> Void
    ) async throws {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw APIClientError(
                "cannot reach the Uplink API at \(host):\(port) (is `api:` set in the configuration and the pipeline running?): \(SocketFailure.describe(error))"
            )
        }
        try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "\(host):\(port)")
            headers.add(name: "Connection", value: "close")
            try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)))
            try await outbound.write(.end(nil))
            for try await part in inbound {
                switch part {
                case .head(let head):
                    try onHead(Int(head.status.code))
                case .body(let buffer):
                    try await onBody(Array(buffer.readableBytesView))
                case .end:
                    return
                }
            }
        }
    }
}

/// The API could not be reached, or answered something unexpected.
public struct APIClientError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
