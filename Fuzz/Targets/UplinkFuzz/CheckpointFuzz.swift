@testable import UplinkCore
@testable import UplinkPlugins

/// The file source's checkpoint files, as a restart reads them: the first format (`checkpoints.json`), the slot
/// file (`checkpoints.slots`, formats 2 and 3) and a slot's payload on its own (so that mutations reach the
/// delivered ranges without first having to forge a CRC).
///
/// Properties: no crash; what decodes encodes to bytes that decode to the same entries (identity, path, offset,
/// rotated, delivered ranges), and that encoding is stable; decoded ranges are sorted, disjoint, not empty, after
/// the offset and at most ``CheckpointSlots/maximumRanges`` per file.
enum CheckpointFuzz {
    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        let bytes = Array(data)
        legacy(bytes)
        slotFile(bytes)
        for format in CheckpointSlots.readableFormats {
            if let entries = try? CheckpointSlots.decodePayload(bytes[...], format: format) {
                check(entries)
                payloadRoundTrip(entries)
            }
        }
    }

    private static func legacy(_ bytes: [UInt8]) {
        guard let entries = try? CheckpointCodec.decode(bytes) else { return }
        for entry in entries {
            require(entry.offset >= 0 && entry.identity.fingerprint.length >= 0, "a negative offset or length")
        }
        let encoded = CheckpointCodec.encode(entries)
        let again: [CheckpointEntry]
        do {
            again = try CheckpointCodec.decode(encoded)
        } catch {
            require(false, "an encoded checkpoint does not decode: \(error)")
            return
        }
        require(again == entries, "checkpoint entries changed through encode and decode")
        require(CheckpointCodec.encode(again) == encoded, "the checkpoint encoding is not stable")
    }

    private static func slotFile(_ bytes: [UInt8]) {
        let recovery = CheckpointSlots.decode(bytes)
        require(recovery.damagedSlots <= 2, "more than two damaged slots")
        guard let newest = recovery.newest else { return }
        check(newest.entries)
        // Written again (format 3, in a slot large enough), the file holds the same checkpoint.
        let capacity = max(recovery.capacity, CheckpointSlots.capacity(for: newest.entries))
        guard let file = CheckpointSlots.encodeFile(newest.entries, sequence: newest.sequence, capacity: capacity) else {
            require(false, "a decoded checkpoint cannot be encoded")
            return
        }
        require(
            CheckpointSlots.decode(file).newest?.entries == newest.entries,
            "slot entries changed through encode and decode")
    }

    private static func payloadRoundTrip(_ entries: [CheckpointEntry]) {
        let encoded = CheckpointSlots.encodePayload(entries)
        guard let again = try? CheckpointSlots.decodePayload(encoded[...]) else {
            require(false, "an encoded payload does not decode")
            return
        }
        require(again == entries, "payload entries changed through encode and decode")
        require(CheckpointSlots.encodePayload(again) == encoded, "the payload encoding is not stable")
    }

    private static func check(_ entries: [CheckpointEntry]) {
        for entry in entries {
            require(entry.offset >= 0, "a negative offset")
            require(entry.delivered.count <= CheckpointSlots.maximumRanges, "more ranges than the maximum")
            var previous = entry.offset
            for (index, range) in entry.delivered.enumerated() {
                require(!range.isEmpty, "an empty range")
                require(
                    range.lowerBound > previous || (index == 0 && range.lowerBound == previous),
                    "ranges out of order, overlapping or touching")
                previous = range.upperBound
            }
        }
    }
}
