import NIOPosix

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The file of accepted messages, one JSON object per line:
/// `{"time":"…","topic":"…","product_sn":"…","device_sn":"…","message_id":"…","body_base64":"…"}`.
///
/// Lines are written by a private one-thread pool: writes stay off the cooperative pool, and a single
/// thread keeps the lines in the order the message ids were assigned.
final class AcceptedLog: Sendable {
    let path: String
    private let descriptor: Int32
    private let pool: NIOThreadPool

    private init(path: String, descriptor: Int32, pool: NIOThreadPool) {
        self.path = path
        self.descriptor = descriptor
        self.pool = pool
    }

    /// Opens (creates) the file for appending, on a thread pool.
    static func open(path: String) async throws -> AcceptedLog {
        let descriptor = try await NIOThreadPool.singleton.runIfActive {
            try PosixFile.openForAppending(path: path)
        }
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return AcceptedLog(path: path, descriptor: descriptor, pool: pool)
    }

    /// The line recorded for `message`, newline included.
    static func line(for message: AcceptedMessage) -> [UInt8] {
        let object = JSONValue.object([
            ("time", .string(message.receivedAt.formatted(.iso8601))),
            ("topic", .string(message.topic)),
            ("product_sn", .string(message.productSN)),
            ("device_sn", .string(message.deviceSN)),
            ("message_id", .string(message.messageID)),
            ("body_base64", .string(Data(message.body).base64EncodedString())),
        ])
        return Array((object + "\n").utf8)
    }

    /// Appends the line of `message`; `completion` runs once it is written (or failed to be, which is
    /// reported to it). Lines are written in the order of the calls; the line is built on the writer thread
    /// so the caller's lock is not held while a large body is encoded.
    func append(_ message: AcceptedMessage, completion: @escaping @Sendable ((any Error)?) -> Void) {
        let descriptor = self.descriptor
        let path = self.path
        self.pool.submit { state in
            guard case .active = state else {
                completion(EmulatorError(.fileIO, "the accepted-message log is closed"))
                return
            }
            do {
                try PosixFile.writeAll(descriptor: descriptor, bytes: Self.line(for: message), path: path)
                completion(nil)
            } catch {
                completion(error)
            }
        }
    }

    /// Stops the writer thread and closes the file. Called after the server stopped, when no answer waits
    /// for a line any more; a line still queued would be cancelled and reported to its completion.
    func close() async {
        try? await self.pool.shutdownGracefully()
        PosixFile.release(descriptor: self.descriptor)
    }
}
