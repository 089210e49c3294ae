import Foundation
import Testing

@testable import IoTCoreEmulator

@Suite("Emulator message retention", .timeLimit(.minutes(1)))
struct EmulatorRetentionTests {
    static func message(_ id: Int, bytes: Int) -> AcceptedMessage {
        AcceptedMessage(
            topic: "/abcdefgh12345678/device001/upload", productSN: "abcdefgh12345678", deviceSN: "device001",
            body: [UInt8](repeating: UInt8(truncatingIfNeeded: id), count: bytes), messageID: String(id),
            receivedAt: Date())
    }

    /// What a reader sees: the newest messages within the caps.
    static func visible(_ state: EmulatorState, _ caps: RetentionCaps) -> [String] {
        state.accepted.suffix(state.retainedSuffix(within: caps)).map(\.messageID)
    }

    @Test("the body bytes kept are bounded, the newest kept, and the array trimmed in chunks")
    func bytesCap() {
        var state = EmulatorState(faults: EmulatorFaults())
        let caps = RetentionCaps(messages: 10_000, bytes: 8_000)
        for id in 1...100 {
            state.retain(Self.message(id, bytes: 1_000), within: caps)
            #expect(Self.visible(state, caps) == (max(1, id - 7)...id).map(String.init))
            // Never more than the cap plus the eighth it waits for before trimming.
            #expect(state.acceptedBytes <= 9_000)
            #expect(state.acceptedBytes == state.accepted.reduce(0) { $0 + $1.body.count })
        }
    }

    @Test("the count cap still holds, and whichever cap is smaller wins")
    func countCap() {
        var state = EmulatorState(faults: EmulatorFaults())
        let caps = RetentionCaps(messages: 16, bytes: 1 << 20)
        for id in 1...200 { state.retain(Self.message(id, bytes: 10), within: caps) }
        #expect(Self.visible(state, caps) == (185...200).map(String.init))
        #expect(state.accepted.count <= 18)
    }

    @Test("a message larger than the byte cap is still kept alone; a zero cap keeps nothing")
    func oversizedAndZero() {
        var state = EmulatorState(faults: EmulatorFaults())
        let caps = RetentionCaps(messages: 100, bytes: 500)
        state.retain(Self.message(1, bytes: 100), within: caps)
        state.retain(Self.message(2, bytes: 131_072), within: caps)
        #expect(Self.visible(state, caps) == ["2"])
        #expect(state.accepted.map(\.messageID) == ["2"])

        var none = EmulatorState(faults: EmulatorFaults())
        for caps in [RetentionCaps(messages: 0, bytes: 500), RetentionCaps(messages: 10, bytes: 0)] {
            none.retain(Self.message(3, bytes: 10), within: caps)
            #expect(Self.visible(none, caps).isEmpty)
        }
    }

    @Test("GET /_emulator/messages and acceptedMessages() honour the byte cap over HTTPS")
    func overHTTPS() async throws {
        let configuration = EmulatorConfiguration(devices: [EmulatorTesting.device], maxRetainedBytes: 3_000)
        try await EmulatorTesting.withEmulator(configuration) { harness in
            let token = try await harness.token(for: EmulatorTesting.device)
            for id in 1...5 {
                let answer = try await harness.publish(
                    topic: "/abcdefgh12345678/device001/upload",
                    body: Array(String(repeating: String(id), count: 1_000).utf8), token: token)
                #expect(answer.retCode == 0, "\(answer.text)")
            }
            let accepted = harness.emulator.acceptedMessages()
            #expect(accepted.map { $0.body.first } == [UInt8(ascii: "3"), UInt8(ascii: "4"), UInt8(ascii: "5")])
            let listing = try await harness.get("/_emulator/messages")
            let items = try #require((try? JSONSerialization.jsonObject(with: Data(listing.body))) as? [[String: Any]])
            #expect(items.count == 3)
        }
    }
}
