import Foundation
import Synchronization
import Testing
import UplinkCore

@testable import UplinkPlugins
import UplinkTestSupport

/// A pseudo-terminal standing in for a serial device: the test writes to the master; the source opens the
/// slave through a symbolic link, as it would open /dev/serial/by-id/….
final class FakeSerialDevice: Sendable {
    let master: Int32
    /// Held open by the test (as a device's tty exists while plugged in), so bytes written before the source
    /// opens the port wait in the tty's input queue.
    let slave: Int32
    let slavePath: String

    init() throws {
        var master: Int32 = -1
        var slave: Int32 = -1
        var raw = termios()
        cfmakeraw(&raw)
        guard openpty(&master, &slave, nil, &raw, nil) == 0 else { throw POSIXError(.EIO) }
        self.master = master
        self.slave = slave
        slavePath = String(cString: ttyname(slave))
    }

    /// Points `link` at this device, atomically (a new link renamed over the old one).
    func link(at link: String) {
        let temporary = link + ".new"
        unlink(temporary)
        symlink(slavePath, temporary)
        rename(temporary, link)
    }

    /// Writes as a device would at `baud` (10 bits per byte with 8N1): paced, not all at once.
    func write(_ bytes: [UInt8], baud: Int? = nil) {
        var offset = 0
        let clock = ContinuousClock()
        let start = clock.now
        while offset < bytes.count {
            let size = min(64, bytes.count - offset)
            let written = bytes[offset..<(offset + size)].withUnsafeBytes {
                Foundation.write(master, $0.baseAddress, size)
            }
            precondition(written > 0, "pty write failed")
            offset += written
            if let baud {
                let due = start + .microseconds(Int64(offset) * 10_000_000 / Int64(baud))
                if due > clock.now { usleep(UInt32((due - clock.now).components.attoseconds / 1_000_000_000_000)) }
            }
        }
    }

    /// Unplugs it: both ends closed, the tty hangs up.
    func unplug() {
        close(master)
        close(slave)
    }

    /// Bytes received by the tty and not read yet.
    func unreadBytes() -> Int32 {
        var count: Int32 = 0
        _ = ioctl(slave, UInt(FIONREAD), &count)
        return count
    }

    func termiosOfPort() -> termios {
        var options = termios()
        tcgetattr(slave, &options)
        return options
    }
}

@Suite(.serialized, .timeLimit(.minutes(1))) struct SerialSourceTests {
    func serialSource(_ options: String) throws -> SerialSource {
        try #require(try buildSource("{ type: serial, \(options) }") as? SerialSource)
    }

    @Test func framesWrittenAt115200BaudArriveIntact() async throws {
        let device = try FakeSerialDevice()
        defer { device.unplug() }
        let link = sourceTemporaryDirectory("serial") + "/ttyUSB0"
        device.link(at: link)
        let harness = SourceHarness()
        let source = try serialSource("device: \(link), baud: 115200")
        harness.start(source)
        var payload: [UInt8] = []
        var expected: [String] = []
        for index in 0..<300 {
            let frame = "sensor=\(index) t=21.\(index % 10) rh=40\r\n"  // CRLF lines are split on \n
            expected.append("sensor=\(index) t=21.\(index % 10) rh=40")
            payload.append(contentsOf: frame.utf8)
        }
        // About 9 KB: 0.8 s at 115200 baud.
        device.write(payload, baud: 115_200)
        #expect(await harness.waitFor(count: 300))
        await harness.stop()
        #expect(harness.lines.count == expected.count)
        #expect(
            harness.lines == expected,
            "first difference: \(zip(harness.lines, expected).first { $0 != $1 }.map { "\($0)" } ?? "none")")
        #expect(harness.events.allSatisfy { $0.location == link })
        #expect(harness.events.last?.offset == Int64(payload.count - expected.last!.utf8.count - 2))
        #expect(source.statistics.connectionCount == 1)
    }

    @Test func binaryFixedLengthFramesPassThroughUnchanged() async throws {
        let device = try FakeSerialDevice()
        defer { device.unplug() }
        let link = sourceTemporaryDirectory("serial") + "/tty"
        device.link(at: link)
        let harness = SourceHarness()
        harness.start(try serialSource("device: \(link), baud: 4000000, frame_bytes: 16"))
        let bytes = (0...255).map { UInt8($0) }  // NUL, \n, \r, XON/XOFF, 0xFF: all data
        device.write(bytes)
        #expect(await harness.waitFor(count: 16))
        await harness.stop()
        #expect(harness.events.flatMap(\.bytes) == bytes)
        #expect(harness.events.allSatisfy { $0.bytes.count == 16 })
    }

    @Test func invalidUTF8LinesAreData() async throws {
        let device = try FakeSerialDevice()
        defer { device.unplug() }
        let link = sourceTemporaryDirectory("serial") + "/tty"
        device.link(at: link)
        let harness = SourceHarness()
        harness.start(try serialSource("device: \(link), delimiter: '|'"))
        device.write([0xC3, 0x28, 0x7C, 0xFF, 0x00, 0x7C])
        #expect(await harness.waitFor(count: 2))
        await harness.stop()
        #expect(harness.events.map(\.bytes) == [[0xC3, 0x28], [0xFF, 0x00]])
    }

    @Test func lineSettingsAreAppliedThroughTermios() async throws {
        let device = try FakeSerialDevice()
        defer { device.unplug() }
        let link = sourceTemporaryDirectory("serial") + "/tty"
        device.link(at: link)
        let harness = SourceHarness()
        let source = try serialSource(
            "device: \(link), baud: 57600, data_bits: 7, parity: even, stop_bits: 2, flow_control: rtscts")
        harness.start(source)
        #expect(await waitUntil { source.statistics.connectionCount == 1 })
        var options = device.termiosOfPort()
        await harness.stop()
        // A pty keeps the speed, stop bits, flow control and raw mode (it forces 8 bits without parity).
        #expect(cfgetospeed(&options) == speed_t(B57600))
        #expect(options.c_cflag & tcflag_t(CSTOPB) != 0)
        #expect(options.c_cflag & tcflag_t(truncatingIfNeeded: CRTSCTS) != 0)
        #expect(options.c_lflag & tcflag_t(ICANON | ECHO | ISIG) == 0)
        #expect(options.c_iflag & tcflag_t(ICRNL | IXON) == 0)
        #expect(options.c_oflag & tcflag_t(OPOST) == 0)
    }

    @Test(arguments: [
        (7, SerialLineSettings.Parity.even, 2, SerialLineSettings.FlowControl.none),
        (8, .odd, 1, .xonxoff),
        (5, .none, 1, .rtscts),
    ])
    func termiosFlagsForEachLineSetting(
        dataBits: Int, parity: SerialLineSettings.Parity, stopBits: Int, flow: SerialLineSettings.FlowControl
    ) {
        var options = termios()
        options.c_lflag = tcflag_t(ICANON | ECHO)
        let settings = SerialLineSettings(
            baud: 4_000_000, dataBits: dataBits, parity: parity, stopBits: stopBits, flowControl: flow)
        settings.apply(to: &options)
        let sizes = [5: CS5, 6: CS6, 7: CS7, 8: CS8]
        #expect(options.c_cflag & tcflag_t(CSIZE) == tcflag_t(sizes[dataBits]!))
        #expect((options.c_cflag & tcflag_t(PARENB) != 0) == (parity != .none))
        #expect((options.c_cflag & tcflag_t(PARODD) != 0) == (parity == .odd))
        #expect((options.c_cflag & tcflag_t(CSTOPB) != 0) == (stopBits == 2))
        #expect((options.c_cflag & tcflag_t(truncatingIfNeeded: CRTSCTS) != 0) == (flow == .rtscts))
        #expect((options.c_iflag & tcflag_t(IXON | IXOFF) != 0) == (flow == .xonxoff))
        #expect(options.c_cflag & tcflag_t(CLOCAL | CREAD) == tcflag_t(CLOCAL | CREAD))
        #expect(options.c_lflag & tcflag_t(ICANON | ECHO) == 0)
        #expect(cfgetispeed(&options) == speed_t(B4000000))
        #expect(SerialLineSettings.standardRates.count == 30)
    }

    @Test func thePortIsOpenedExclusively() async throws {
        let device = try FakeSerialDevice()
        defer { device.unplug() }
        let link = sourceTemporaryDirectory("serial") + "/tty"
        device.link(at: link)
        let first = try SerialPort.open(link, settings: SerialLineSettings())
        defer { SerialPort.close(first) }
        #expect(throws: SerialPortError.self) { _ = try SerialPort.open(link, settings: SerialLineSettings()) }
        do {
            _ = try SerialPort.open(device.slavePath, settings: SerialLineSettings())
            Issue.record("a second open through another path succeeded")
        } catch {
            #expect(error.code == .busy)
        }
    }

    @Test func unpluggedDeviceReconnectsAndNothingWrittenAfterwardsIsLost() async throws {
        let first = try FakeSerialDevice()
        let link = sourceTemporaryDirectory("serial") + "/ttyACM0"
        first.link(at: link)
        let harness = SourceHarness()
        let source = try serialSource("device: \(link), reconnect_delay: 20ms, max_reconnect_delay: 100ms")
        harness.start(source)
        first.write(Array((0..<50).map { "before-\($0)\n" }.joined().utf8))
        #expect(await harness.waitFor(count: 50))
        first.unplug()
        #expect(await waitUntil { source.statistics.disconnectCount == 1 })
        // Plugged back in: a new tty at the same path; the device talks at once, before the agent reopens it.
        let second = try FakeSerialDevice()
        defer { second.unplug() }
        second.link(at: link)
        second.write(Array((0..<100).map { "after-\($0)\n" }.joined().utf8))
        #expect(await harness.waitFor(count: 150))
        second.write(Array("last\n".utf8))
        #expect(await harness.waitFor(count: 151))
        await harness.stop()
        #expect(harness.lines == (0..<50).map { "before-\($0)" } + (0..<100).map { "after-\($0)" } + ["last"])
        #expect(source.statistics.reconnectCount == 1)
    }

    @Test func aFullBufferDropsFramesInsteadOfBlockingTheLine() async throws {
        let device = try FakeSerialDevice()
        defer { device.unplug() }
        let link = sourceTemporaryDirectory("serial") + "/tty"
        device.link(at: link)
        let source = try serialSource("device: \(link), buffer: { max_events: 10, when_full: drop_newest }")
        // A downstream that accepts one event and is never read: the pipeline is stuck.
        let downstream = EventChannel<RawEvent>(capacity: 1)
        downstream.addProducer()
        let metrics = ComponentMetrics()
        let context = ComponentContext(
            id: "s", type: "serial", role: .source, logger: SourceHarness.logger, metrics: metrics,
            dataDirectory: sourceTemporaryDirectory("state"))
        let task = Task {
            try await source.run(context: context, output: Outbox(channels: [downstream], metrics: metrics))
        }
        #expect(await waitUntil { source.statistics.connectionCount == 1 })
        func write(_ batch: Int) { device.write(Array((0..<5).map { "frame-\(batch * 5 + $0)\n" }.joined().utf8)) }
        // The first five frames reach the downstream, which is then full for good. (Written alone: frames that
        // pile up in the tty under load are read as one chunk, however large, and the bound below would not hold.)
        write(0)
        #expect(await waitUntil { downstream.bufferedEvents > 0 })
        for batch in 1..<40 {
            write(batch)
            try await Task.sleep(for: .milliseconds(5))
        }
        // Every frame is read off the line (none is left in the tty), most are dropped and counted.
        #expect(await waitUntil { metrics.droppedEvents.load(ordering: .relaxed) > 0 })
        #expect(await waitUntil { device.unreadBytes() == 0 })
        task.cancel()
        _ = await task.result
        #expect(downstream.bufferedEvents <= 5)
    }

    @Test func configurationIsValidated() {
        #expect(configErrors("{ type: serial, device: /dev/ttyUSB0, baud: 4000000 }").isEmpty)
        #expect(configErrors("{ type: serial }").contains { $0.contains("missing required option 'device'") })
        #expect(configErrors("{ type: serial, device: /dev/x, baud: 12345 }").contains { $0.contains("standard rate") })
        #expect(
            configErrors("{ type: serial, device: /dev/x, data_bits: 9 }").contains { $0.contains("between 5 and 8") })
        #expect(configErrors("{ type: serial, device: /dev/x, stop_bits: 3 }").contains { $0.contains("1 or 2") })
        #expect(
            configErrors("{ type: serial, device: /dev/x, parity: mark }").contains { $0.contains("none, even, odd") })
        #expect(
            configErrors("{ type: serial, device: /dev/x, frame_bytes: 8, delimiter: x }").contains {
                $0.contains("exclude each other")
            })
        #expect(
            configErrors("{ type: serial, device: /dev/x, buffer: { when_full: wait } }").contains {
                $0.contains("block")
            })
        #expect(
            configErrors("{ type: serial, device: /dev/x, buffer: { size: 3 } }").contains {
                $0.contains("buffer.size")
            })
    }
}
