@testable import UplinkCore
@testable import UplinkPlugins

/// The file source's checkpoint file, as a restart reads it.
///
/// Properties: no crash; what decodes encodes to a file that decodes to the same entries (identity, path,
/// offset, rotated), and that encoding is stable.
enum CheckpointFuzz {
    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        guard let entries = try? CheckpointCodec.decode(Array(data)) else { return }
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
}
