import Logging
@testable import UplinkCore
import UplinkFileSystem

/// Disk-buffer recovery: the segment files and ledger an earlier run left, as a restart reads them.
///
/// Input: a flag byte (event type; raw bytes or well-formed frames; a ledger or not), then either the segment's
/// bytes verbatim or frames built from length-prefixed payloads (with a correct CRC unless the flag byte of the
/// frame says otherwise), so the fuzzer reaches the event decoders behind the checksum.
///
/// Properties: no crash, no memory bomb (libFuzzer's -rss_limit_mb); recovery counts no more events than the
/// segment can frame; the reader delivers at most what recovery counted, and for well-formed frames exactly the
/// intact ones, in order, equal to decoding them directly; after every delivered chunk is acknowledged and the
/// buffer closed, a restart delivers nothing again (no duplicates).
enum DiskBufferFuzz {
    static let logger = Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }
    static let magic: [UInt8] = Array("UPLB".utf8) + [1, 0, 0, 0]

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var input = FuzzInput(data)
        let flags = input.byte()
        switch flags % 3 {
        case 0: check(Message.self, flags: flags, &input)
        case 1: check(Record.self, flags: flags, &input)
        default: check(RawEvent.self, flags: flags, &input)
        }
    }

    static func check<E: PersistableEvent>(_ type: E.Type, flags: UInt8, _ input: inout FuzzInput) {
        let directory = Scratch.fresh("diskbuffer")
        let structured = flags & 0x10 != 0
        var segment: [UInt8] = []
        var intact: [[UInt8]] = []
        if structured {
            segment = magic
            while !input.isAtEnd {
                let corrupt = input.byte() & 0x80 != 0
                let payload = Array(input.chunk())
                appendUInt32(&segment, UInt32(payload.count))
                appendUInt32(&segment, CRC32.checksum(payload) ^ (corrupt ? 1 : 0))
                segment += payload
                if !corrupt { intact.append(payload) }
            }
        } else {
            segment = Array(input.rest)
        }
        if flags & 0x20 != 0 {
            let offset = Int(flags >> 6) * 8 + 8
            Scratch.writeFile(directory + "/ledger.json", Array("{\"segment\":1,\"offset\":\(offset)}\n".utf8))
            if structured { intact = [] }  // the ledger skips an unknown number of them
        }
        Scratch.writeFile(directory + "/segment-0000000001.dat", segment)

        let configuration = DiskBuffer<E>.Configuration(directory: directory, maxBytes: 64 << 20)
        let buffer: DiskBuffer<E>
        do {
            buffer = try DiskBuffer<E>(configuration: configuration, logger: logger)
        } catch {
            require(false, "recovery failed: \(error)")
            return
        }
        // Recovery is the buffer thread's first job: its counts are there once it is open.
        blocking { await buffer.opened() }
        let recovered = buffer.bufferedEvents
        require(recovered <= max(0, segment.count - 8) / 8, "recovered \(recovered) events from \(segment.count) bytes")

        let delivered = blocking { () -> [E] in
            var events: [E] = []
            while let chunk = await buffer.next() {
                events += chunk.events
                chunk.acknowledgements.resolve(.delivered)
            }
            return events
        }
        require(delivered.count <= recovered, "delivered \(delivered.count) events, recovery counted \(recovered)")
        if structured && !intact.isEmpty {
            let expected = intact.compactMap { payload -> [UInt8]? in
                var reader = BinaryReader(payload[...])
                return (try? E.decode(from: &reader)).map(encoded)
            }
            require(delivered.map(encoded) == expected, "delivered events differ from the intact frames")
        }
        blocking { await buffer.closeReceiver() }

        do {
            let restarted = try DiskBuffer<E>(configuration: configuration, logger: logger)
            // Delivered again, not merely counted: records skipped as damaged after the last chunk are counted
            // as buffered by the next recovery (the acknowledged position stops before them), never delivered.
            let again = blocking { () -> Int in
                var count = 0
                while let chunk = await restarted.next() { count += chunk.count }
                return count
            }
            require(again == 0, "a restart delivers \(again) acknowledged events again")
        } catch {
            require(false, "recovery after a clean close failed: \(error)")
        }
    }

    static func encoded<E: PersistableEvent>(_ event: E) -> [UInt8] {
        var writer = BinaryWriter()
        event.encode(to: &writer)
        return writer.bytes
    }

    static func appendUInt32(_ bytes: inout [UInt8], _ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }
}
