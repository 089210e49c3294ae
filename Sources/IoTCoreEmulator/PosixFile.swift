#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Blocking POSIX file operations. Callers run them on a thread pool, never on the cooperative pool.
enum PosixFile {
    /// Writes `bytes` to `path` atomically (a temporary file renamed over it) with `mode`, so a reader never
    /// sees a half-written CA certificate.
    static func writeAtomically(path: String, bytes: [UInt8], mode: mode_t) throws(EmulatorError) {
        let temporary = "\(path).tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw failure("cannot create", path: temporary) }
        do throws(EmulatorError) {
            try writeAll(descriptor: descriptor, bytes: bytes, path: temporary)
            // The umask may have narrowed the mode given to open(2); the file must be readable by all.
            guard fchmod(descriptor, mode) == 0 else { throw failure("cannot set the mode of", path: temporary) }
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let error = failure("cannot rename a temporary file to", path: path)
            unlink(temporary)
            throw error
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
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write", path: path)
            }
            offset += written
        }
    }

    /// Closes a descriptor opened by ``openForAppending(path:)``.
    static func release(descriptor: Int32) {
        _ = close(descriptor)
    }

    private static func failure(_ what: String, path: String) -> EmulatorError {
        let code = errno
        let reason = String(cString: strerror(code))
        return EmulatorError(.fileIO, "\(what) '\(path)': \(reason) (errno \(code))")
    }
}
