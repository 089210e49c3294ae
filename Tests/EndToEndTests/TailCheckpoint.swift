import Foundation

/// Reads the file tail's checkpoint file (`<data_dir>/<id>/checkpoints.slots`) the way the docs describe its
/// layout, independently of the agent's own decoder: two slots of half the file each; a slot is `UPCK`, a
/// format byte, 3 zero bytes, capacity (u32 LE), sequence (u64 LE), payload length (u32 LE), CRC-32 (u32 LE),
/// then the payload (a varint count, then per file: device, inode, fingerprint length and hash as varints, the
/// offset as a zig-zag varint, a flags byte, the path with a varint length, and in format 3 the delivered ranges
/// after the offset: a varint count, then per range the gap since the previous end and the length as varints).
enum TailCheckpoint {
    /// The offset of the first file in the newest valid slot; 0 when there is none.
    static func offset(stateDirectory: URL, source: String = "app") -> Int {
        first(stateDirectory: stateDirectory, source: source).offset
    }

    /// The first file's offset and the delivered ranges after it, in the newest valid slot.
    static func first(stateDirectory: URL, source: String = "app") -> (offset: Int, delivered: [Range<Int>]) {
        let url = stateDirectory.appendingPathComponent(source).appendingPathComponent("checkpoints.slots")
        guard let bytes = try? [UInt8](Data(contentsOf: url)), bytes.count >= 56, bytes.count % 2 == 0 else { return (0, []) }
        let capacity = bytes.count / 2
        var best: (sequence: UInt64, offset: Int, delivered: [Range<Int>])? = nil
        for start in [0, capacity] {
            let slot = bytes[start..<(start + capacity)]
            guard slot.prefix(4).elementsEqual(Array("UPCK".utf8)) else { continue }
            let sequence = little(slot, start + 12, 8)
            let length = Int(little(slot, start + 20, 4))
            guard length <= capacity - 28 else { continue }
            let payload = Array(slot[(start + 28)..<(start + 28 + length)])
            guard crc32(Array(slot[start..<(start + 24)]) + payload) == UInt32(little(slot, start + 24, 4)) else { continue }
            var index = 0
            func varint() -> UInt64 {
                var value: UInt64 = 0
                var shift: UInt64 = 0
                while index < payload.count {
                    let byte = payload[index]
                    index += 1
                    value |= UInt64(byte & 0x7F) << shift
                    if byte < 0x80 { break }
                    shift += 7
                }
                return value
            }
            guard varint() > 0 else { continue }
            for _ in 0..<4 { _ = varint() }
            let zigzag = varint()
            let offset = Int(Int64(bitPattern: (zigzag >> 1) ^ (0 &- (zigzag & 1))))
            var delivered: [Range<Int>] = []
            if slot[start + 4] >= 3 {
                index += 1  // flags
                index += Int(varint())  // the path
                var previous = offset
                for _ in 0..<varint() {
                    let lower = previous + Int(varint())
                    previous = lower + Int(varint())
                    delivered.append(lower..<previous)
                }
            }
            if best == nil || sequence > best!.sequence { best = (sequence, offset, delivered) }
        }
        return best.map { ($0.offset, $0.delivered) } ?? (0, [])
    }

    private static func little(_ bytes: ArraySlice<UInt8>, _ start: Int, _ count: Int) -> UInt64 {
        (0..<count).reduce(UInt64(0)) { $0 | UInt64(bytes[start + $1]) << (8 * UInt64($1)) }
    }

    private static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
