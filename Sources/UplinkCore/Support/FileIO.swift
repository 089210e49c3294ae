#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import UplinkFileSystem

/// Small POSIX file helpers, so the engine needs no Foundation.
public enum FileIO {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var operation: String
        public var path: String
        public var code: Int32

        public init(_ operation: String, path: String, code: Int32 = errno) {
            self.operation = operation
            self.path = path
            self.code = code
        }

        public init(_ failure: FileSystemFailure) {
            self.init(failure.operation, path: failure.path, code: failure.code)
        }

        public var description: String { "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))" }
    }

    /// Reads a whole file, refusing files larger than `limit`.
    public static func readFile(_ path: String, limit: Int = 64 << 20) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure("cannot open", path: path) }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure("cannot read", path: path)
            }
            if count == 0 { return result }
            result.append(contentsOf: chunk[0..<count])
            if result.count > limit { throw Failure("file too large:", path: path, code: EFBIG) }
        }
    }

    /// Writes all bytes to a descriptor, retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&descriptor, 1, 1000)
                    continue
                }
                return errno
            }
            offset += written
        }
        return nil
    }

    /// Replaces a file atomically with ``AtomicFile/write(_:_:mode:fileSystem:)``, the one atomic write: a temporary
    /// file (`O_NOFOLLOW`), fsync, rename, directory fsync, every result checked. A crash leaves the old or the new
    /// content, never a torn file; a failure throws and leaves the old content.
    public static func writeFileAtomically(
        _ path: String, _ bytes: [UInt8], mode: mode_t = 0o600, fileSystem: some FileSystem = PosixFileSystem()
    ) throws(Failure) {
        do {
            try AtomicFile.write(path, bytes, mode: mode, fileSystem: fileSystem)
        } catch {
            throw Failure(error)
        }
    }

    /// Creates a directory and its parents with the given mode (existing ones are left as they are); each one
    /// created is synced into its parent.
    public static func makeDirectories(
        _ path: String, mode: mode_t = 0o700, fileSystem: some FileSystem = PosixFileSystem()
    ) throws(Failure) {
        do {
            try fileSystem.makeDirectories(path, mode: mode)
        } catch {
            throw Failure(error)
        }
    }

    public static func parentDirectory(of path: String) -> String {
        UplinkFileSystem.parentDirectory(of: path)
    }

    public static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
