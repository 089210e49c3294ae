#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to a loopback port, for clients that misbehave on purpose: connect and say nothing,
/// send half a request head, or ask for a stream and never read it. Reads never block a thread of the
/// cooperative pool, which the server's handlers need.
final class RawConnection {
    let fd: Int32
    let readTimeout: Duration

    /// Connects to 127.0.0.1:`port`; reads give up after `readTimeout`.
    init(port: Int, readTimeout: Duration = .seconds(10)) throws {
        self.readTimeout = readTimeout
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw Failure(what: "socket", code: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        // Fully initialised: deinit closes the descriptor when this throws.
        guard result == 0 else { throw Failure(what: "connect", code: errno) }
    }

    deinit { if fd >= 0 { close(fd) } }

    struct Failure: Error, CustomStringConvertible {
        var what: String
        var code: Int32
        var description: String { "\(what): \(String(cString: strerror(code)))" }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw Failure(what: "send", code: errno) }
            sent += count
        }
    }

    /// Everything until the peer closes (or resets) the connection; throws when the read timeout passes first.
    func readToEnd() async throws -> String {
        let deadline = ContinuousClock.now + readTimeout
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                received += buffer[..<count]
            } else if count == 0 || errno == ECONNRESET {
                return String(decoding: received, as: UTF8.self)
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                guard ContinuousClock.now < deadline else { throw Failure(what: "recv", code: ETIMEDOUT) }
                try await Task.sleep(for: .milliseconds(5))
            } else if errno != EINTR {
                throw Failure(what: "recv", code: errno)
            }
        }
    }
}

/// Descriptors of this process that are connections accepted on local `port` (the server's ends): other tests
/// running alongside open descriptors of their own, so a plain count would not do.
func acceptedConnections(onPort port: Int) -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let fd = Int32(name) else { continue }
        var local = sockaddr_in()
        var peer = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let isLocal = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard isLocal, local.sin_family == sa_family_t(AF_INET), Int(UInt16(bigEndian: local.sin_port)) == port else {
            continue
        }
        length = socklen_t(MemoryLayout<sockaddr_in>.size)
        // The listening socket has no peer.
        let connected = withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
        }
        if connected { count += 1 }
    }
    return count
}
