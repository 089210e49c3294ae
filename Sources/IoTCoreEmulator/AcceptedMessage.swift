#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A message the emulator accepted (answered with RetCode 0).
public struct AcceptedMessage: Sendable, Hashable {
    /// The topic, with its leading `/`, e.g. `/PSN/DSN/upload`.
    public var topic: String
    /// The publishing device's product serial number (from its token).
    public var productSN: String
    /// The publishing device's serial number (from its token).
    public var deviceSN: String
    /// The body exactly as received.
    public var body: [UInt8]
    /// The `MessageID` the emulator answered with.
    public var messageID: String
    /// When the emulator accepted the message.
    public var receivedAt: Date

    /// Creates an accepted message record.
    public init(topic: String, productSN: String, deviceSN: String, body: [UInt8], messageID: String, receivedAt: Date)
    {
        self.topic = topic
        self.productSN = productSN
        self.deviceSN = deviceSN
        self.body = body
        self.messageID = messageID
        self.receivedAt = receivedAt
    }
}
