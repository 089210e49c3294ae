import CUplinkLinux
import UplinkCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Line settings of a serial port.
struct SerialLineSettings: Sendable, Equatable {
    enum Parity: String, Sendable, CaseIterable { case none, even, odd }
    enum FlowControl: String, Sendable, CaseIterable { case none, rtscts, xonxoff }

    var baud = 9600
    var dataBits = 8
    var parity = Parity.none
    var stopBits = 1
    var flowControl = FlowControl.none

    /// Every standard rate termios has, up to 4 Mbaud.
    static let standardRates: [Int: speed_t] = [
        50: speed_t(B50), 75: speed_t(B75), 110: speed_t(B110), 134: speed_t(B134), 150: speed_t(B150),
        200: speed_t(B200), 300: speed_t(B300), 600: speed_t(B600), 1200: speed_t(B1200), 1800: speed_t(B1800),
        2400: speed_t(B2400), 4800: speed_t(B4800), 9600: speed_t(B9600), 19200: speed_t(B19200),
        38400: speed_t(B38400), 57600: speed_t(B57600), 115_200: speed_t(B115200), 230_400: speed_t(B230400),
        460_800: speed_t(B460800), 500_000: speed_t(B500000), 576_000: speed_t(B576000),
        921_600: speed_t(B921600), 1_000_000: speed_t(B1000000), 1_152_000: speed_t(B1152000),
        1_500_000: speed_t(B1500000), 2_000_000: speed_t(B2000000), 2_500_000: speed_t(B2500000),
        3_000_000: speed_t(B3000000), 3_500_000: speed_t(B3500000), 4_000_000: speed_t(B4000000),
    ]

    /// Raw mode (no echo, no line editing, no translation of CR/LF, 8-bit clean) with these line settings.
    func apply(to options: inout termios) {
        cfmakeraw(&options)
        options.c_cflag &= ~tcflag_t(CSIZE)
        switch dataBits {
        case 5: options.c_cflag |= tcflag_t(CS5)
        case 6: options.c_cflag |= tcflag_t(CS6)
        case 7: options.c_cflag |= tcflag_t(CS7)
        default: options.c_cflag |= tcflag_t(CS8)
        }
        switch parity {
        case .none: options.c_cflag &= ~tcflag_t(PARENB | PARODD)
        case .even:
            options.c_cflag |= tcflag_t(PARENB)
            options.c_cflag &= ~tcflag_t(PARODD)
        case .odd: options.c_cflag |= tcflag_t(PARENB | PARODD)
        }
        if stopBits == 2 { options.c_cflag |= tcflag_t(CSTOPB) } else { options.c_cflag &= ~tcflag_t(CSTOPB) }
        let rtscts = tcflag_t(truncatingIfNeeded: CRTSCTS)
        options.c_cflag &= ~rtscts
        options.c_iflag &= ~tcflag_t(IXON | IXOFF | IXANY)
        switch flowControl {
        case .none: break
        case .rtscts: options.c_cflag |= rtscts
        case .xonxoff: options.c_iflag |= tcflag_t(IXON | IXOFF)
        }
        // Ignore modem control lines (a sensor rarely drives DCD) and enable the receiver.
        options.c_cflag |= tcflag_t(CLOCAL | CREAD)
        // Reads return as soon as one byte is there (the descriptor is non-blocking anyway).
        withUnsafeMutableBytes(of: &options.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        let speed = Self.standardRates[baud] ?? speed_t(B9600)
        cfsetispeed(&options, speed)
        cfsetospeed(&options, speed)
    }
}

/// Why a serial port could not be used.
struct SerialPortError: Error, Sendable, CustomStringConvertible {
    enum Code: String, Sendable {
        /// Another process holds the port (TIOCEXCL or our lock).
        case busy
        /// The device node does not exist (unplugged).
        case missing
        case permission
        /// termios refused the settings.
        case settings
        case other
    }

    var code: Code
    var message: String
    var device: String
    var errno: Int32

    var description: String {
        "\(message) \(device): \(String(cString: strerror(errno)))"
    }
}

/// Opening and closing a serial port: exclusively, non-blocking, raw, with the given line settings.
enum SerialPort {
    /// Opens `device` (a path or a symbolic link to one) for reading, exclusively: TIOCEXCL refuses other
    /// opens of the tty (except by root), and an advisory `flock` refuses a second agent even as root. Two
    /// readers would each get part of the stream.
    static func open(_ device: String, settings: SerialLineSettings) throws(SerialPortError) -> Int32 {
        let fd = Glibc.open(device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            let kind: SerialPortError.Code =
                switch code {
                case ENOENT, ENXIO, ENODEV: .missing
                case EBUSY: .busy
                case EACCES, EPERM: .permission
                default: .other
                }
            throw SerialPortError(code: kind, message: "cannot open", device: device, errno: code)
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            _ = Glibc.close(fd)
            throw SerialPortError(
                code: code == EWOULDBLOCK ? .busy : .other, message: "cannot lock", device: device, errno: code)
        }
        _ = uplink_ioctl_int(fd, uplink_TIOCEXCL())
        var options = termios()
        guard tcgetattr(fd, &options) == 0 else {
            let code = errno
            close(fd)
            throw SerialPortError(code: .settings, message: "not a terminal device:", device: device, errno: code)
        }
        settings.apply(to: &options)
        // TCSANOW: bytes already received are kept.
        guard tcsetattr(fd, TCSANOW, &options) == 0 else {
            let code = errno
            close(fd)
            throw SerialPortError(
                code: .settings, message: "cannot apply the line settings to", device: device, errno: code)
        }
        return fd
    }

    static func close(_ fd: Int32) {
        IOReactor.shared.deregister(fd)
        _ = uplink_ioctl_int(fd, uplink_TIOCNXCL())
        _ = flock(fd, LOCK_UN)
        _ = Glibc.close(fd)
    }

    /// Errors that mean the device went away (unplugged, hung up): reconnect rather than fail.
    static func isDisconnect(_ code: Int32) -> Bool {
        [EIO, ENXIO, ENODEV, EBADF, ENOENT, EPIPE, ESHUTDOWN, ENOTCONN].contains(code)
    }
}
