#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import CUplinkLinux

/// A hash of a file's first bytes (up to `fingerprint_bytes`), so a reused inode number is not mistaken for the
/// file that had it before, and a rotated copy can be recognised by its content.
///
/// A small file has a short fingerprint that grows as the file does; two fingerprints are compared over the
/// shorter length by reading the candidate's first bytes again.
struct FileFingerprint: Sendable, Hashable, CustomStringConvertible {
    /// How many leading bytes the hash covers.
    var length: Int
    var hash: UInt64

    static let empty = FileFingerprint(length: 0, hash: fnvOffsetBasis)

    static let fnvOffsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let fnvPrime: UInt64 = 0x0000_0100_0000_01b3

    /// FNV-1a over `bytes`: fast, and good enough to tell log files apart (this is no security boundary).
    static func of(_ bytes: some Collection<UInt8>) -> FileFingerprint {
        var hash = fnvOffsetBasis
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= fnvPrime
        }
        return FileFingerprint(length: bytes.count, hash: hash)
    }

    /// The fingerprint of the first `min(size, maxLength)` bytes of an open file; nil when it cannot be read.
    static func read(fd: Int32, maxLength: Int) -> FileFingerprint? {
        guard maxLength > 0 else { return .empty }
        var buffer = [UInt8](repeating: 0, count: maxLength)
        var total = 0
        while total < maxLength {
            let count = buffer.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress! + total, maxLength - total, off_t(total))
            }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { break }
            total += count
        }
        return of(buffer[0..<total])
    }

    /// Whether the open file still begins with the bytes this fingerprint was taken from.
    func matches(fd: Int32) -> Bool {
        if length == 0 { return true }
        guard let current = Self.read(fd: fd, maxLength: length) else { return false }
        return current == self
    }

    var hexHash: String {
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    var description: String { "\(length)/\(hexHash)" }
}

/// What makes a file the same file: device, inode and the fingerprint of its first bytes.
struct FileIdentity: Sendable, Hashable, CustomStringConvertible {
    var device: UInt64
    var inode: UInt64
    var fingerprint: FileFingerprint

    var key: InodeKey { InodeKey(device: device, inode: inode) }

    var description: String { "\(device):\(inode):\(fingerprint)" }
}

/// Device and inode: which file an open descriptor or a path refers to right now.
struct InodeKey: Sendable, Hashable {
    var device: UInt64
    var inode: UInt64
}

/// What `fstat`/`stat` says about a file, in the few fields the tail needs.
struct FileStatus: Sendable, Equatable {
    var key: InodeKey
    var size: Int64
    var links: Int
    var isRegular: Bool

    init(key: InodeKey, size: Int64, links: Int = 1, isRegular: Bool = true) {
        self.key = key
        self.size = size
        self.links = links
        self.isRegular = isRegular
    }

    init(_ status: stat) {
        key = InodeKey(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        size = Int64(status.st_size)
        links = Int(status.st_nlink)
        isRegular = (status.st_mode & S_IFMT) == S_IFREG
    }

    static func of(fd: Int32) -> FileStatus? {
        var status = stat()
        guard fstat(fd, &status) == 0 else { return nil }
        return FileStatus(status)
    }

    static func of(path: String) -> FileStatus? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return FileStatus(status)
    }
}
