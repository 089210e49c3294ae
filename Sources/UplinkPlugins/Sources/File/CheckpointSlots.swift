import UplinkCore
import UplinkFileSystem

/// The checkpoint file's layout: two slots of `capacity` bytes each (the file is exactly two slots long), written
/// in place and in turn, so that rewriting a checkpoint is one small `pwrite` and never a temporary file and a
/// rename (which wear out SD cards and eMMC).
///
/// A slot: `"UPCK"`, a format byte (3), three zero bytes, `capacity` (u32 LE), `sequence` (u64 LE), the payload's
/// `length` (u32 LE), a CRC-32 (u32 LE) of the 24 bytes before it and of the payload, then the payload. The
/// payload is a varint count of entries, each: device, inode, fingerprint length, fingerprint hash (varints),
/// offset (zig-zag varint), flags (one byte: 1 = rotated), path (varint length and UTF-8 bytes), then (format 3)
/// the delivered ranges after the offset: a varint count (at most ``maximumRanges``), and per range the gap
/// since the previous range's end (the offset for the first) and the range's length, as varints. Ranges are
/// sorted, disjoint, not touching and not empty. Format 2 (the same without ranges) is still read.
///
/// Recovery takes the valid slot with the highest sequence; a torn or corrupted slot (bad magic, length or CRC)
/// is skipped, so the other slot is used. Decoding is a pure function of the file's bytes (fuzzed, and unit
/// tested with torn and corrupted slots).
enum CheckpointSlots {
    static let magic: [UInt8] = Array("UPCK".utf8)
    /// The format written; ``readableFormats`` are read.
    static let format: UInt8 = 3
    static let readableFormats: ClosedRange<UInt8> = 2...3
    /// Delivered ranges recorded per file, beyond its contiguous offset: a file whose acknowledgements leave more
    /// gaps than this records the first ones only (the rest is sent again after a crash, and counted).
    static let maximumRanges = 64
    static let minimumCapacity = SlotFraming.minimumCapacity
    /// A checkpoint file larger than this (two slots) is refused as damaged rather than read.
    static let maximumCapacity = 16 << 20

    /// One slot that decoded: its sequence number and the checkpoint it holds.
    struct Slot: Sendable, Equatable {
        var index: Int
        var sequence: UInt64
        var entries: [CheckpointEntry]
    }

    /// What a checkpoint file's bytes hold.
    struct Recovery: Sendable, Equatable {
        /// The valid slot with the highest sequence, nil when neither slot is valid.
        var newest: Slot?
        /// Slots that hold something but not a valid checkpoint (torn or corrupted); a never-written slot (all
        /// zeros) is not counted.
        var damagedSlots: Int
        /// Each slot's capacity: half the file.
        var capacity: Int
    }

    /// The slot capacity (a power of two, at least one page) that holds `entries`.
    static func capacity(for entries: [CheckpointEntry]) -> Int {
        SlotFraming.capacity(forPayload: encodePayload(entries).count)
    }

    /// The bytes of one slot holding `entries` (header and payload, without padding); nil when they do not fit
    /// in `capacity`.
    static func encodeSlot(_ entries: [CheckpointEntry], sequence: UInt64, capacity: Int) -> [UInt8]? {
        SlotFraming.encodeSlot(
            magic: magic, format: format, payload: encodePayload(entries), sequence: sequence, capacity: capacity,
            maximumCapacity: maximumCapacity)
    }

    /// A whole new file: `entries` in slot 0 with `sequence`, slot 1 never written.
    static func encodeFile(_ entries: [CheckpointEntry], sequence: UInt64, capacity: Int) -> [UInt8]? {
        SlotFraming.encodeFile(
            magic: magic, format: format, payload: encodePayload(entries), sequence: sequence, capacity: capacity,
            maximumCapacity: maximumCapacity)
    }

    /// Decodes a checkpoint file's bytes; never traps, whatever the bytes. A slot whose framing is valid but whose
    /// payload does not decode counts as damaged, like a torn one.
    static func decode(_ file: [UInt8]) -> Recovery {
        var payloads: [[CheckpointEntry]] = []  // one per slot `SlotFraming` accepts, in the same order
        let framed = SlotFraming.decode(file, magic: magic, maximumCapacity: maximumCapacity) { format, payload in
            guard readableFormats.contains(format), let entries = try? decodePayload(payload, format: format) else {
                return false
            }
            payloads.append(entries)
            return true
        }
        var newest: Slot?
        for (slot, entries) in zip(framed.slots, payloads) where newest == nil || slot.sequence > newest!.sequence {
            newest = Slot(index: slot.index, sequence: slot.sequence, entries: entries)
        }
        return Recovery(newest: newest, damagedSlots: framed.damaged, capacity: framed.capacity)
    }

    static func encodePayload(_ entries: [CheckpointEntry]) -> [UInt8] {
        var writer = BinaryWriter(reserving: 16 + entries.count * 64)
        writer.varint(UInt64(entries.count))
        for entry in entries {
            writer.varint(entry.identity.device)
            writer.varint(entry.identity.inode)
            writer.varint(UInt64(entry.identity.fingerprint.length))
            writer.varint(entry.identity.fingerprint.hash)
            writer.signed(entry.offset)
            writer.byte(entry.rotated ? 1 : 0)
            writer.string(entry.path)
            let delivered = encodableRanges(entry)
            writer.varint(UInt64(delivered.count))
            var previous = entry.offset
            for range in delivered {
                writer.varint(UInt64(range.lowerBound - previous))
                writer.varint(UInt64(range.count))
                previous = range.upperBound
            }
        }
        return writer.bytes
    }

    /// The entry's ranges that the format can hold: a range that is empty, overlaps or touches the one before,
    /// or starts before the offset is left out (its bytes are read again: a duplicate, never a loss), and so are
    /// those after the first ``maximumRanges``.
    static func encodableRanges(_ entry: CheckpointEntry) -> [Range<Int64>] {
        var ranges: [Range<Int64>] = []
        var previous = entry.offset
        for range in entry.delivered where ranges.count < maximumRanges && !range.isEmpty {
            guard range.lowerBound > previous || (ranges.isEmpty && range.lowerBound == previous) else { continue }
            ranges.append(range)
            previous = range.upperBound
        }
        return ranges
    }

    /// A payload that does not hold checkpoint entries.
    struct Damage: Error {}

    /// Decodes a payload of `format` (2: without ranges, 3: with them); throws ``Damage`` for anything but a
    /// well-formed payload.
    static func decodePayload(_ payload: ArraySlice<UInt8>, format: UInt8 = format) throws -> [CheckpointEntry] {
        var reader = BinaryReader(payload)
        let count = try reader.varint()
        // Each entry takes at least 7 bytes: a count beyond that is damage, not a reason to reserve memory.
        guard count <= UInt64(payload.count / 7) else { throw Damage() }
        var entries: [CheckpointEntry] = []
        entries.reserveCapacity(Int(count))
        for _ in 0..<count {
            let device = try reader.varint()
            let inode = try reader.varint()
            let length = try reader.varint()
            let hash = try reader.varint()
            let offset = try reader.signed()
            let flags = try reader.byte()
            let path = try reader.string()
            guard length <= 65536, offset >= 0, flags <= 1 else { throw Damage() }
            var delivered: [Range<Int64>] = []
            if format >= 3 {
                let rangeCount = try reader.varint()
                guard rangeCount <= UInt64(maximumRanges) else { throw Damage() }
                var previous = offset
                for index in 0..<Int(rangeCount) {
                    let gap = try reader.varint()
                    let count = try reader.varint()
                    // Sorted, disjoint and apart (touching ranges are written as one), not empty, no overflow.
                    guard count > 0, index == 0 || gap > 0, gap <= UInt64(Int64.max - previous) else { throw Damage() }
                    let lower = previous + Int64(gap)
                    guard count <= UInt64(Int64.max - lower) else { throw Damage() }
                    delivered.append(lower..<(lower + Int64(count)))
                    previous = lower + Int64(count)
                }
            }
            entries.append(
                CheckpointEntry(
                    identity: FileIdentity(
                        device: device, inode: inode, fingerprint: FileFingerprint(length: Int(length), hash: hash)),
                    path: path, offset: offset, rotated: flags == 1, delivered: delivered))
        }
        guard reader.isAtEnd else { throw Damage() }
        return entries
    }
}
