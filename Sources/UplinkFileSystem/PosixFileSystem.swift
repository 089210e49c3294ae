#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The real file system: each call is the system call of the same name, with the errno convention of
/// ``FileSystem``. It holds nothing, so passing it around costs nothing.
public struct PosixFileSystem: FileSystem {
    public init() {}

    @inline(__always) private func result(_ value: Int) -> Int { value < 0 ? -Int(errno) : value }
    @inline(__always) private func status(_ value: Int32) -> Int32 { value == 0 ? 0 : errno }

    public func open(_ path: String, flags: Int32, mode: mode_t) -> Int32 {
        let fd = Glibc.open(path, flags, mode)
        return fd < 0 ? -errno : fd
    }

    @discardableResult public func close(_ fd: Int32) -> Int32 { status(Glibc.close(fd)) }

    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        result(Glibc.write(fd, bytes.baseAddress, bytes.count))
    }

    public func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        result(Glibc.pwrite(fd, bytes.baseAddress, bytes.count, off_t(offset)))
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        result(Glibc.read(fd, buffer.baseAddress, buffer.count))
    }

    public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        result(Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset)))
    }

    public func fsync(_ fd: Int32) -> Int32 { status(Glibc.fsync(fd)) }

    public func fdatasync(_ fd: Int32) -> Int32 { status(Glibc.fdatasync(fd)) }

    public func truncate(_ fd: Int32, to length: Int) -> Int32 { status(Glibc.ftruncate(fd, off_t(length))) }

    public func size(_ fd: Int32) -> Int {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int(info.st_size) : -Int(errno)
    }

    public func setMode(_ fd: Int32, _ mode: mode_t) -> Int32 { status(fchmod(fd, mode)) }

    public func rename(_ from: String, to: String) -> Int32 { status(Glibc.rename(from, to)) }

    public func unlink(_ path: String) -> Int32 { status(Glibc.unlink(path)) }

    public func makeDirectory(_ path: String, mode: mode_t) -> Int32 { status(mkdir(path, mode)) }

    public func syncDirectory(_ path: String) -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { Glibc.close(fd) }
        guard Glibc.fsync(fd) != 0 else { return 0 }
        // A file system that cannot sync directories at all says EINVAL (PostgreSQL's fsync_fname_ext makes the
        // same exception); there is nothing more durable to be had there, and every other error counts.
        return errno == EINVAL ? 0 : errno
    }

    public func list(_ directory: String) -> Result<[String], FileSystemFailure> {
        guard let handle = opendir(directory) else {
            return .failure(FileSystemFailure("cannot list", path: directory))
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return .success(names)
    }
}
