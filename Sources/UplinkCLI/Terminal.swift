import CUplinkLinux
import UplinkCore

#if canImport(Glibc)
import Glibc
#endif

/// The controlling terminal in the mode `uplink top` needs: no line buffering and no echo, reads that return at
/// once (VMIN 0, VTIME 0) so keys are polled between redraws, the alternate screen and a hidden cursor.
/// ``restore()`` puts everything back; it is called on every way out (q, Ctrl-C, SIGTERM, an error).
///
/// `@unchecked Sendable`: one task draws and reads keys; ``restore()`` runs after that task has ended.
final class RawTerminal: @unchecked Sendable {
    private var saved = termios()
    private var active = false

    /// Nil when standard input or output is not a terminal.
    init?() {
        guard isatty(0) == 1, isatty(1) == 1, tcgetattr(0, &saved) == 0 else { return nil }
        var raw = saved
        // Canonical mode and echo off; ISIG stays on, so Ctrl-C is a SIGINT the command traps and handles.
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { bytes in
            bytes[Int(VMIN)] = 0
            bytes[Int(VTIME)] = 0
        }
        guard tcsetattr(0, TCSANOW, &raw) == 0 else { return nil }
        active = true
        write("\u{1B}[?1049h\u{1B}[?25l")
    }

    /// The keys typed since the last call (never blocks).
    func pendingKeys() -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        return count > 0 ? Array(buffer.prefix(count)) : []
    }

    /// Columns and rows (80×24 when the size is unknown).
    var size: (columns: Int, rows: Int) {
        var window = winsize()
        guard uplink_ioctl_ptr(1, UInt(TIOCGWINSZ), &window) == 0, window.ws_col > 0 else { return (80, 24) }
        return (Int(window.ws_col), Int(window.ws_row))
    }

    /// Draws `lines` from the top-left corner, clearing what the previous frame left.
    func draw(_ lines: [String]) {
        var frame = "\u{1B}[H"
        for line in lines.prefix(max(1, size.rows - 1)) { frame += line + "\u{1B}[K\r\n" }
        frame += "\u{1B}[J"
        write(frame)
    }

    func restore() {
        guard active else { return }
        active = false
        write("\u{1B}[?25h\u{1B}[?1049l")
        _ = tcsetattr(0, TCSANOW, &saved)
    }

    deinit { restore() }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { FileIO.writeAll(1, $0) }
    }
}
