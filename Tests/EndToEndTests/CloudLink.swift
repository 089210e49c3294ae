import Foundation
import Synchronization

/// A TCP relay on a loopback port between the agent and the emulator, for outages whose end the test decides.
/// While down it closes every new connection at once (what the emulator's `refuse_connections_seconds` does);
/// once up it relays bytes both ways, TLS included. The emulator's own outage ends only on a timer, since it
/// refuses its control endpoint too: a test timed around it fails when a loaded machine is slower than the timer.
final class CloudLink: Sendable {
    let port: Int
    private let target: Int
    private let listener: Int32
    private let state = Mutex<(down: Bool, stopped: Bool, descriptors: Set<Int32>)>((true, false, []))

    /// Listens on an ephemeral loopback port, down, relaying to `127.0.0.1:target` once ``comeUp()`` is called.
    init(to target: Int) throws {
        self.target = target
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 64) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard bound else {
            close(listener)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        self.listener = listener
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// The sink's endpoint through this link.
    var endpoint: String { "https://127.0.0.1:\(port)" }

    /// Ends the outage: connections made from now on reach the emulator.
    func comeUp() { state.withLock { $0.down = false } }

    /// Stops accepting and closes every relayed connection.
    func stop() {
        let descriptors = state.withLock { state in
            state.stopped = true
            return state.descriptors
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for descriptor in descriptors { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    deinit { close(listener) }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return  // shut down by stop()
            }
            let (down, stopped) = state.withLock { ($0.down, $0.stopped) }
            if stopped { close(client); return }
            if down { close(client); continue }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: UInt16(target))
            let connected = server >= 0 && withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard connected else {
                close(client)
                if server >= 0 { close(server) }
                continue
            }
            state.withLock { $0.descriptors.formUnion([client, server]) }
            // One thread per direction; the connection's descriptors are closed once both directions ended.
            Thread { [self] in
                let answered = DispatchSemaphore(value: 0)
                Thread { [self] in
                    relay(from: server, to: client)
                    answered.signal()
                }.start()
                relay(from: client, to: server)
                answered.wait()
                state.withLock { $0.descriptors.subtract([client, server]) }
                close(client)
                close(server)
            }.start()
        }
    }

    /// Copies bytes until end of file or an error, then passes the end on (a half close).
    private func relay(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        copying: while true {
            let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            var offset = 0
            while offset < count {
                let written = buffer.withUnsafeBytes {
                    send(to, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL))
                }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { break copying }
                offset += written
            }
        }
        shutdown(to, Int32(SHUT_WR))
    }
}
