import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// Why a connection or a listener failed, for people: NIO's errors describe themselves as Swift values
/// (`SingleConnectionFailure(target: …)`, `bind(descriptor:ptr:bytes:)`), so the errno or the cause is taken out
/// of them. Used by the commands that connect (`top`, `tap`) or listen (`emulator`).
public enum SocketFailure {
    public static func describe(_ error: any Error) -> String {
        if let connection = error as? NIOConnectionError {
            if let failure = connection.connectionErrors.first { return describe(failure.error) }
            if let dns = connection.dnsAError ?? connection.dnsAAAAError { return "cannot resolve the host: \(describe(dns))" }
            return "no address to connect to"
        }
        if let io = error as? IOError {
            return "\(String(cString: strerror(io.errnoCode))) (errno \(io.errnoCode))"
        }
        if let channel = error as? ChannelError, case .connectTimeout(let limit) = channel {
            return "no answer within \(limit.nanoseconds / 1_000_000) ms"
        }
        return "\(error)"
    }
}
