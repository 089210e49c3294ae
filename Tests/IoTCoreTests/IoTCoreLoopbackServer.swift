import Glibc
import Synchronization

/// A tiny HTTP/1.1 server on 127.0.0.1 for transport tests: a thread per connection, keep-alive, scripted
/// replies. Test support only; it trusts its client.
final class LoopbackServer: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        /// Header names lowercased.
        var headers: [String: String]
        var body: [UInt8]
        /// Which accepted connection (1-based) carried it.
        var connection: Int
    }

    enum Reply: Sendable {
        case respond(status: Int, body: [UInt8], delayMilliseconds: Int = 0)
        /// Say nothing for this long (or until the server stops), then close the connection.
        case hang(milliseconds: Int)
        /// Close the connection without answering.
        case close
    }

    struct State {
        var requests: [Request] = []
        var connections = 0
        var active = 0
        var maxActive = 0
        var stopped = false
        var openFDs: Set<Int32> = []
    }

    let port: UInt16
    let state = Mutex(State())
    private let listenFD: Int32
    private let handler: @Sendable (Request) -> Reply

    init(handler: @escaping @Sendable (Request) -> Reply) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackError(message: "socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw LoopbackError(message: "bind/listen")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = UInt16(bigEndian: address.sin_port)
        self.listenFD = fd
        startThread { [self] in acceptLoop() }
    }

    var endpoint: String { "http://127.0.0.1:\(port)" }
    var requests: [Request] { state.withLock { $0.requests } }
    var connections: Int { state.withLock { $0.connections } }
    var maxActive: Int { state.withLock { $0.maxActive } }
    /// Connections a client still holds open.
    var openConnections: Int { state.withLock { $0.openFDs.count } }

    func stop() {
        let fds = state.withLock { state in
            state.stopped = true
            return state.openFDs
        }
        shutdown(listenFD, Int32(SHUT_RDWR))
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private var stopped: Bool { state.withLock { $0.stopped } }

    private func acceptLoop() {
        while !stopped {
            let client = accept(listenFD, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                break
            }
            let number = state.withLock { state in
                state.connections += 1
                state.openFDs.insert(client)
                return state.connections
            }
            startThread { [self] in serve(client, connection: number) }
        }
        close(listenFD)
    }

    private func serve(_ fd: Int32, connection: Int) {
        defer {
            state.withLock { _ = $0.openFDs.remove(fd) }
            close(fd)
        }
        var buffer: [UInt8] = []
        while !stopped {
            guard let request = readRequest(fd, &buffer, connection: connection) else { return }
            state.withLock { state in
                state.requests.append(request)
                state.active += 1
                state.maxActive = max(state.maxActive, state.active)
            }
            defer { state.withLock { $0.active -= 1 } }
            switch handler(request) {
            case .close:
                return
            case .hang(let milliseconds):
                for _ in 0..<max(1, milliseconds / 10) where !stopped { usleep(10_000) }
                return
            case .respond(let status, let body, let delay):
                if delay > 0 { usleep(UInt32(delay) * 1000) }
                let head =
                    "HTTP/1.1 \(status) Status\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.count)\r\n\r\n"
                guard sendAll(fd, Array(head.utf8) + body) else { return }
            }
        }
    }

    private func readRequest(_ fd: Int32, _ buffer: inout [UInt8], connection: Int) -> Request? {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            if let range = buffer.firstRange(of: separator) {
                headerEnd = range.upperBound
                break
            }
            guard receive(fd, &buffer) else { return nil }
        }
        let head = String(decoding: buffer[..<headerEnd!], as: UTF8.self)
        var lines = head.split(separator: "\r\n").map(String.init)
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingPrefix(" ").description
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while buffer.count < headerEnd! + length {
            guard receive(fd, &buffer) else { return nil }
        }
        let body = Array(buffer[headerEnd!..<(headerEnd! + length)])
        buffer.removeFirst(headerEnd! + length)
        return Request(
            method: String(requestLine[0]), path: String(requestLine[1]), headers: headers, body: body,
            connection: connection)
    }

    private func receive(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            buffer.append(contentsOf: chunk[..<n])
            return true
        }
    }

    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }
}

struct LoopbackError: Error {
    var message: String
}

/// Runs `body` on a new detached pthread.
private func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    let status = pthread_create(
        &thread, nil,
        { context in
            Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
    precondition(status == 0, "pthread_create failed")
    pthread_detach(thread)
}
