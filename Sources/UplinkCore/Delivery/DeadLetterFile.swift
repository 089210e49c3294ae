#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Records that can never be delivered, with the reason, as JSON lines an operator can read and replay:
/// `{"time":ms,"component":"id","topic":"…","reason":"…","retcode":N,"payload_base64":"…"}`.
///
/// The file is created 0600 (payloads may be sensitive), opened on first use, fsynced after each write (dead
/// letters are rare and each one matters), and rotated at `maxBytes` keeping `keep` older files
/// (`path.1` is the newest of them).
public final class DeadLetterFile: Sendable {
    public let path: String
    public let maxBytes: Int
    public let keep: Int

    private struct State {
        var fd: Int32 = -1
        var size = 0
    }

    private let state = Mutex(State())

    public init(path: String, maxBytes: Int = 64 << 20, keep: Int = 3) {
        self.path = path
        self.maxBytes = max(4096, maxBytes)
        self.keep = max(0, keep)
    }

    deinit {
        state.withLock { state in
            if state.fd >= 0 { close(state.fd) }
        }
    }

    /// Appends one dead letter. Throws when the disk refuses it, so the caller keeps the data.
    public func write(component: String, topic: String?, reason: String, retCode: Int?, payload: some Collection<UInt8>) throws {
        var line: [UInt8] = []
        line.reserveCapacity(payload.count * 4 / 3 + 256)
        line.append(contentsOf: "{\"time\":".utf8)
        JSONWriter.appendInteger(currentTimeMillis(), to: &line)
        line.append(contentsOf: ",\"component\":".utf8)
        JSONWriter.appendString(component, to: &line)
        line.append(contentsOf: ",\"topic\":".utf8)
        if let topic { JSONWriter.appendString(topic, to: &line) } else { line.append(contentsOf: "null".utf8) }
        line.append(contentsOf: ",\"reason\":".utf8)
        JSONWriter.appendString(reason, to: &line)
        line.append(contentsOf: ",\"retcode\":".utf8)
        if let retCode { JSONWriter.appendInteger(Int64(retCode), to: &line) } else { line.append(contentsOf: "null".utf8) }
        line.append(contentsOf: ",\"payload_base64\":\"".utf8)
        Base64.encode(payload, into: &line)
        line.append(contentsOf: "\"}\n".utf8)
        try state.withLock { state throws(FileIO.Failure) in
            if state.fd >= 0 && state.size + line.count > maxBytes && state.size > 0 {
                close(state.fd)
                state.fd = -1
                rotate()
            }
            if state.fd < 0 {
                try FileIO.makeDirectories(FileIO.parentDirectory(of: path), mode: 0o700)
                let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw FileIO.Failure("cannot open dead-letter file", path: path) }
                var status = stat()
                fstat(fd, &status)
                state.fd = fd
                state.size = Int(status.st_size)
            }
            if let code = line.withUnsafeBytes({ FileIO.writeAll(state.fd, $0) }) {
                throw FileIO.Failure("cannot write dead-letter file", path: path, code: code)
            }
            fsync(state.fd)
            state.size += line.count
        }
    }

    private func rotate() {
        guard keep > 0 else {
            unlink(path)
            return
        }
        unlink("\(path).\(keep)")
        if keep > 1 {
            for index in stride(from: keep - 1, through: 1, by: -1) {
                rename("\(path).\(index)", "\(path).\(index + 1)")
            }
        }
        rename(path, "\(path).1")
    }
}
