#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import UplinkFileSystem

/// Blocking POSIX file operations. Callers run them on a thread pool, never on the cooperative pool.
enum PosixFile {
    /// Writes `bytes` to `path` with the one atomic write (``AtomicFile``: temporary file, fsync, rename,
    /// directory fsync, each checked) and `mode`, so a reader never sees a half-written CA certificate.
    static func writeAtomically(path: String, bytes: [UInt8], mode: mode_t) throws(EmulatorError) {
        do {
            try AtomicFile.write(path, bytes, mode: mode)
        } catch {
            throw EmulatorError(.fileIO, error.description)
        }
    }

    /// Opens `path` for appending, creating it with mode 0600: accepted payloads may be sensitive.
    static func openForAppending(path: String) throws(EmulatorError) -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("cannot open for appending", path: path) }
        return descriptor
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    static func writeAll(descriptor: Int32, bytes: [UInt8], path: String) throws(EmulatorError) {
        let code = bytes.withUnsafeBytes { PosixFileSystem().writeAll(descriptor, $0) }
        if code != 0 { throw failure("cannot write", path: path, code: code) }
    }

    /// Closes a descriptor opened by ``openForAppending(path:)``.
    static func release(descriptor: Int32) {
        _ = close(descriptor)
    }

    private static func failure(_ what: String, path: String, code: Int32 = errno) -> EmulatorError {
        let reason = String(cString: strerror(code))
        return EmulatorError(.fileIO, "\(what) '\(path)': \(reason) (errno \(code))")
    }
}
