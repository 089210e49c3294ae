#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Small files replaced whole: the disk buffer's ledger, the tail's checkpoints, the token cache, the
/// `RequestID` counter, the emulator's certificates. The one place that knows how to do it so that a power cut
/// leaves the old content or the new, never a mix, and a failure is never taken for success:
///
/// 1. open `<path>.tmp` with `O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC` (a planted symbolic link is refused),
/// 2. set its mode (an older temporary file or the umask could have another), write all bytes,
/// 3. fsync it (checked: after a failed fsync the bytes may never reach the disk),
/// 4. rename it over `path` (checked), then fsync the directory (checked: the rename is durable only then).
///
/// Any failure removes the temporary file and throws, naming the file and the errno; `path` then still holds
/// its previous content.
public enum AtomicFile {
    /// Replaces `path` with `bytes`.
    public static func write(
        _ path: String, _ bytes: [UInt8], mode: mode_t = 0o600, fileSystem: some FileSystem = PosixFileSystem()
    ) throws(FileSystemFailure) {
        let temporary = path + ".tmp"
        let fd = fileSystem.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode: mode)
        guard fd >= 0 else { throw FileSystemFailure("cannot create", path: temporary, code: -fd) }
        var failure: FileSystemFailure?
        var code = fileSystem.setMode(fd, mode)
        if code != 0 {
            failure = FileSystemFailure("cannot set the mode of", path: temporary, code: code)
        } else {
            code = bytes.withUnsafeBytes { fileSystem.writeAll(fd, $0) }
            if code != 0 {
                failure = FileSystemFailure("cannot write", path: temporary, code: code)
            } else {
                code = fileSystem.fsync(fd)
                if code != 0 { failure = FileSystemFailure("cannot fsync", path: temporary, code: code) }
            }
        }
        // Checked too: the rename below publishes the file, so a close that reports an error must stop it.
        let closed = fileSystem.close(fd)
        if failure == nil, closed != 0 { failure = FileSystemFailure("cannot close", path: temporary, code: closed) }
        if let failure {
            _ = fileSystem.unlink(temporary)
            throw failure
        }
        code = fileSystem.rename(temporary, to: path)
        guard code == 0 else {
            _ = fileSystem.unlink(temporary)
            throw FileSystemFailure("cannot rename to", path: path, code: code)
        }
        try fileSystem.syncDirectoryChecked(parentDirectory(of: path))
    }

    /// Reads the whole file, refusing one larger than `limit`; symbolic links are not followed.
    public static func read(
        _ path: String, limit: Int, fileSystem: some FileSystem = PosixFileSystem()
    ) throws(FileSystemFailure) -> [UInt8] {
        try fileSystem.readFile(path, limit: limit, flags: O_NOFOLLOW)
    }
}
