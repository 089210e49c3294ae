#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import UplinkFileSystem

/// Small POSIX file helpers, so the engine needs no Foundation.
public enum FileIO {
    /// A failed file call: what was done, to which file, and the errno. The same type as the file-system seam's,
    /// so a failure keeps its text through every layer and nothing converts between two copies.
    public typealias Failure = FileSystemFailure

    /// Reads a whole file, refusing files larger than `limit` (``FileSystem/readFile(_:limit:flags:)``).
    public static func readFile(_ path: String, limit: Int = 64 << 20) throws(Failure) -> [UInt8] {
        try PosixFileSystem().readFile(path, limit: limit)
    }

    /// Writes all bytes to a descriptor (``writeFully(_:retrying:_:)``); one another process made non-blocking
    /// (a shared terminal or pipe) is waited for with poll when full. nil, or the errno that stopped it.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        let code = writeFully(bytes) { code in
            guard code == EAGAIN else { return false }
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&descriptor, 1, 1000)
            return true
        } _: { rest, _ in
            PosixFileSystem().write(fd, rest)
        }
        return code == 0 ? nil : code
    }

    /// Replaces a file atomically with ``AtomicFile/write(_:_:mode:fileSystem:)``, the one atomic write: a temporary
    /// file (`O_NOFOLLOW`), fsync, rename, directory fsync, every result checked. A crash leaves the old or the new
    /// content, never a torn file; a failure throws and leaves the old content.
    public static func writeFileAtomically(
        _ path: String, _ bytes: [UInt8], mode: mode_t = 0o600, fileSystem: some FileSystem = PosixFileSystem()
    ) throws(Failure) {
        try AtomicFile.write(path, bytes, mode: mode, fileSystem: fileSystem)
    }

    /// Creates a directory and its parents with the given mode (existing ones are left as they are); each one
    /// created is synced into its parent.
    public static func makeDirectories(
        _ path: String, mode: mode_t = 0o700, fileSystem: some FileSystem = PosixFileSystem()
    ) throws(Failure) {
        try fileSystem.makeDirectories(path, mode: mode)
    }

    public static func parentDirectory(of path: String) -> String {
        UplinkFileSystem.parentDirectory(of: path)
    }

    public static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Why opening `path` for writing with `O_CREAT` would fail on this machine now, or nil. Nothing is
    /// created: `uplink validate` asks it so that it refuses the path `uplink run` could not open at start.
    public static func fileCreationProblem(_ path: String) -> String? {
        var status = stat()
        if stat(path, &status) == 0 {
            if status.st_mode & S_IFMT == S_IFDIR { return "\(path) is a directory" }
            return access(path, W_OK) == 0 ? nil : "\(path) cannot be written: \(errorText(errno))"
        }
        if errno != ENOENT && errno != ENOTDIR { return "\(path) cannot be reached: \(errorText(errno))" }
        let parent = parentDirectory(of: path)
        switch nearestExisting(parent) {
        case .failure(let unusable): return unusable.problem
        case .success(let existing) where existing != parent:
            return "the directory \(parent) does not exist (create it: only the file itself is created)"
        case .success:
            if access(parent, W_OK | X_OK) != 0 { return "no file can be created in \(parent): \(errorText(errno))" }
            return nil
        }
    }

    /// Why ``makeDirectories(_:mode:fileSystem:)`` could not create `path` (or use it, when it exists) on this
    /// machine now, or nil. Nothing is created.
    public static func directoryCreationProblem(_ path: String) -> String? {
        switch nearestExisting(path) {
        case .failure(let unusable): return unusable.problem
        case .success(let existing):
            guard access(existing, W_OK | X_OK) != 0 else { return nil }
            let what = existing == path ? "\(path) cannot be written" : "\(path) cannot be created in \(existing)"
            return "\(what): \(errorText(errno))"
        }
    }

    private struct Unusable: Error { var problem: String }

    /// `path` or its nearest ancestor that exists, when that is a directory; else why not.
    private static func nearestExisting(_ path: String) -> Result<String, Unusable> {
        var existing = path
        var status = stat()
        while stat(existing, &status) != 0 {
            if errno != ENOENT && errno != ENOTDIR {
                return .failure(Unusable(problem: "\(existing) cannot be reached: \(errorText(errno))"))
            }
            let parent = parentDirectory(of: existing)
            if parent == existing { break }
            existing = parent
        }
        if status.st_mode & S_IFMT != S_IFDIR { return .failure(Unusable(problem: "\(existing) is not a directory")) }
        return .success(existing)
    }

    /// An errno's text as it reads inside a sentence: `permission denied`, `no such file or directory`.
    public static func errorText(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        return text.prefix(1).lowercased() + text.dropFirst()
    }
}

extension FileSystemFailure {
    /// The errno's text as it reads inside a sentence: `permission denied`.
    public var reason: String { FileIO.errorText(code) }
}
