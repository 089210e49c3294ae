public import UplinkFileSystem

/// The disk buffer's ledger, `ledger.slots`: where the first record the sink has not acknowledged starts (a
/// segment and a byte offset in it), in a ``TwoSlotFile`` so that moving it is one `pwrite` in place.
///
/// Payload (``SlotFraming`` format 1, magic `"UPLL"`): the segment and the offset, as varints. The first format
/// (`ledger.json`, `{"segment":N,"offset":M}`, replaced atomically) is still read at start, and removed once its
/// successor is on disk.
public enum DiskBufferLedger: TwoSlotLayout {
    public struct Entry: Sendable, Equatable {
        public var segment: Int
        public var offset: Int

        public init(segment: Int, offset: Int) {
            self.segment = segment
            self.offset = offset
        }
    }

    public struct Recovery: Sendable, Equatable {
        /// The valid slot with the highest sequence: its index, sequence and entry.
        public var newest: (index: Int, sequence: UInt64, entry: Entry)?
        public var damagedSlots: Int
        public var capacity: Int

        public static func == (lhs: Recovery, rhs: Recovery) -> Bool {
            lhs.newest?.index == rhs.newest?.index && lhs.newest?.sequence == rhs.newest?.sequence
                && lhs.newest?.entry == rhs.newest?.entry && lhs.damagedSlots == rhs.damagedSlots
                && lhs.capacity == rhs.capacity
        }
    }

    public static let fileName = "ledger.slots"
    public static let legacyFileName = "ledger.json"
    static let magic: [UInt8] = Array("UPLL".utf8)
    static let format: UInt8 = 1
    public static let maximumCapacity = SlotFraming.minimumCapacity

    public static func capacity(for content: Entry) -> Int { SlotFraming.minimumCapacity }

    public static func encodeSlot(_ content: Entry, sequence: UInt64, capacity: Int) -> [UInt8]? {
        SlotFraming.encodeSlot(
            magic: magic, format: format, payload: payload(content), sequence: sequence, capacity: capacity,
            maximumCapacity: maximumCapacity)
    }

    public static func encodeFile(_ content: Entry, sequence: UInt64, capacity: Int) -> [UInt8]? {
        SlotFraming.encodeFile(
            magic: magic, format: format, payload: payload(content), sequence: sequence, capacity: capacity,
            maximumCapacity: maximumCapacity)
    }

    public static func decode(_ file: [UInt8]) -> Recovery {
        let decoded = SlotFraming.decode(file, magic: magic, maximumCapacity: maximumCapacity) { format, payload in
            format == self.format && entry(payload) != nil
        }
        let newest = decoded.slots.max { $0.sequence < $1.sequence }
        return Recovery(
            newest: newest.map { ($0.index, $0.sequence, entry($0.payload[...])!) }, damagedSlots: decoded.damaged,
            capacity: decoded.capacity)
    }

    public static func newest(in recovery: Recovery) -> (index: Int, sequence: UInt64)? {
        recovery.newest.map { ($0.index, $0.sequence) }
    }

    public static func capacity(of recovery: Recovery) -> Int { recovery.capacity }

    private static func payload(_ entry: Entry) -> [UInt8] {
        var writer = BinaryWriter(reserving: 20)
        writer.varint(UInt64(max(0, entry.segment)))
        writer.varint(UInt64(max(0, entry.offset)))
        return writer.bytes
    }

    private static func entry(_ payload: ArraySlice<UInt8>) -> Entry? {
        var reader = BinaryReader(payload)
        guard let segment = try? reader.varint(), let offset = try? reader.varint(), reader.isAtEnd,
            segment < 1 << 40, offset < 1 << 40
        else { return nil }
        return Entry(segment: Int(segment), offset: Int(offset))
    }
}
