#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The file-system calls that durable state goes through: the disk buffer's segments and ledger, the dead-letter
/// file, the tail's checkpoints, the token cache and the `RequestID` counter.
///
/// One thin seam, so that a test can replace the disk with ``FileSystem`` implementations that record every
/// write, fsync, rename, truncate and unlink and then "lose power" (see `SimulatedFileSystem` in
/// `UplinkFileSystemTesting`), or that fail an fsync on demand. ``PosixFileSystem`` is the real one: each call
/// is the system call of the same name and nothing more.
///
/// The calls answer as the system calls do, without throwing, so the hot path stays a plain call: a descriptor
/// or a byte count is returned as such, and a failure as a negative errno (`-EIO`); calls that return nothing
/// return `0` or the errno (`EIO`).
public protocol FileSystem: Sendable {
    /// `open(2)`: a descriptor, or `-errno`.
    func open(_ path: String, flags: Int32, mode: mode_t) -> Int32
    /// `close(2)`: 0 or an errno. The descriptor is gone either way.
    @discardableResult func close(_ fd: Int32) -> Int32
    /// One `write(2)` at the descriptor's position (or its end, with `O_APPEND`): bytes written, or `-errno`.
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int
    /// `pwrite(2)`: bytes written at `offset`, or `-errno`.
    func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int
    /// One `read(2)` from the descriptor's position: bytes read (0 at the end), or `-errno`.
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int
    /// `pread(2)`: bytes read at `offset` (0 at the end), or `-errno`.
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int
    /// `fsync(2)`: 0 or an errno. After a failure the data it covered may never reach the disk.
    func fsync(_ fd: Int32) -> Int32
    /// `fdatasync(2)`: 0 or an errno.
    func fdatasync(_ fd: Int32) -> Int32
    /// `ftruncate(2)`: 0 or an errno.
    func truncate(_ fd: Int32, to length: Int) -> Int32
    /// The file's size (`fstat(2)`), or `-errno`.
    func size(_ fd: Int32) -> Int
    /// `fchmod(2)`: 0 or an errno.
    func setMode(_ fd: Int32, _ mode: mode_t) -> Int32
    /// `rename(2)`: 0 or an errno.
    func rename(_ from: String, to: String) -> Int32
    /// `unlink(2)`: 0 or an errno.
    func unlink(_ path: String) -> Int32
    /// `mkdir(2)`: 0 or an errno (`EEXIST` included).
    func makeDirectory(_ path: String, mode: mode_t) -> Int32
    /// Opens `path` as a directory and fsyncs it, so the entries created, renamed or removed in it survive a
    /// power cut: 0 or an errno.
    func syncDirectory(_ path: String) -> Int32
    /// The names in a directory (without `.` and `..`), or why it cannot be read.
    func list(_ directory: String) -> Result<[String], FileSystemFailure>
}

extension FileSystem {
    /// Writes all of `bytes`, retrying short writes and `EINTR`: 0 or an errno.
    public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        writeFully(bytes) { rest, _ in write(fd, rest) }
    }

    /// Writes all of `bytes` at `offset`, retrying short writes and `EINTR`: 0 or an errno.
    public func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at start: Int) -> Int32 {
        writeFully(bytes) { rest, offset in pwrite(fd, rest, at: start + offset) }
    }

    /// Reads exactly `count` bytes at `offset`: fewer only at the end of the file; `-errno` on failure.
    public func preadFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        var offset = 0
        while offset < buffer.count {
            let count = pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]), at: start + offset)
            if count < 0 {
                if count == -Int(EINTR) { continue }
                return count
            }
            if count == 0 { break }
            offset += count
        }
        return offset
    }

    /// Reads a whole file, refusing one larger than `limit`; `flags` are added to `O_RDONLY | O_CLOEXEC`.
    public func readFile(_ path: String, limit: Int, flags: Int32 = 0) throws(FileSystemFailure) -> [UInt8] {
        let fd = open(path, flags: O_RDONLY | O_CLOEXEC | flags, mode: 0)
        guard fd >= 0 else { throw FileSystemFailure("cannot open", path: path, code: -fd) }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(65536, limit + 1))
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, into: $0) }
            if count < 0 {
                if count == -Int(EINTR) { continue }
                throw FileSystemFailure("cannot read", path: path, code: Int32(-count))
            }
            if count == 0 { return result }
            result.append(contentsOf: chunk[0..<count])
            if result.count > limit { throw FileSystemFailure("file too large:", path: path, code: EFBIG) }
        }
    }

    /// Creates a directory and its parents with `mode` (existing ones are left as they are). Each directory
    /// created is made durable in its parent, so a file made durable inside it cannot vanish with it.
    public func makeDirectories(_ path: String, mode: mode_t = 0o700) throws(FileSystemFailure) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            let parent = current.isEmpty ? "/" : current
            current += "/" + component
            let code = makeDirectory(current, mode: mode)
            if code == EEXIST { continue }
            guard code == 0 else { throw FileSystemFailure("cannot create directory", path: current, code: code) }
            let synced = syncDirectory(parent)
            guard synced == 0 else { throw FileSystemFailure("cannot fsync directory", path: parent, code: synced) }
        }
    }

    /// `syncDirectory`, throwing.
    public func syncDirectoryChecked(_ path: String) throws(FileSystemFailure) {
        let code = syncDirectory(path)
        guard code == 0 else { throw FileSystemFailure("cannot fsync directory", path: path, code: code) }
    }
}

/// The one loop that writes a whole buffer: `writeOnce(rest, offset)` writes some of `rest`, the bytes from
/// `offset` on, and answers as the ``FileSystem`` calls do (a byte count, or `-errno`). A short write goes on with
/// what is left; `EINTR`, and an errno `retrying` accepts (it may first wait, for example until a non-blocking
/// descriptor is writable after `EAGAIN`), tries again. A write of 0 bytes is `EIO`, so the loop always ends.
/// 0 or the errno that stopped it.
public func writeFully(
    _ bytes: UnsafeRawBufferPointer, retrying: (Int32) -> Bool = { _ in false },
    _ writeOnce: (_ rest: UnsafeRawBufferPointer, _ offset: Int) -> Int
) -> Int32 {
    var offset = 0
    while offset < bytes.count {
        let written = writeOnce(UnsafeRawBufferPointer(rebasing: bytes[offset...]), offset)
        if written < 0 {
            let code = Int32(-written)
            if code == EINTR || retrying(code) { continue }
            return code
        }
        if written == 0 { return EIO }
        offset += written
    }
    return 0
}

/// A failed file-system call: what was done, to which file, and the errno. Its description is the message a
/// person reads: `cannot fsync /data/cloud/buffer/segment-0000000003.dat: Input/output error (errno 5)`.
public struct FileSystemFailure: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var code: Int32

    public init(_ operation: String, path: String, code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))" }
}

/// The directory part of `path` (`.` for a bare name).
public func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}
