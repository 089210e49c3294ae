#if canImport(Glibc)
import Glibc
#endif
import Testing
import UplinkCore
import UplinkFileSystem

/// The one write loop (`writeFully`) that `writeAll`, `pwriteAll` and `FileIO.writeAll` share.
@Suite struct WriteFullyTests {
    /// Answers a scripted sequence of results (a byte count or `-errno`), recording the offsets it was asked for.
    final class ScriptedWrites {
        var answers: [Int]
        var offsets: [Int] = []
        var written: [UInt8] = []

        init(_ answers: [Int]) { self.answers = answers }

        func write(_ rest: UnsafeRawBufferPointer, _ offset: Int) -> Int {
            offsets.append(offset)
            let answer = answers.isEmpty ? rest.count : answers.removeFirst()
            if answer > 0 { written += rest.prefix(answer) }
            return answer
        }
    }

    let bytes: [UInt8] = Array(0..<10)

    @Test func shortWritesAndInterruptionsGoOnWithWhatIsLeft() {
        let writes = ScriptedWrites([3, -Int(EINTR), 4, 3])
        let code = bytes.withUnsafeBytes { writeFully($0) { writes.write($0, $1) } }
        #expect(code == 0)
        #expect(writes.written == bytes)
        #expect(writes.offsets == [0, 3, 3, 7])
    }

    @Test func anErrorStopsWithItsErrno() {
        let writes = ScriptedWrites([5, -Int(ENOSPC)])
        let code = bytes.withUnsafeBytes { writeFully($0) { writes.write($0, $1) } }
        #expect(code == ENOSPC)
        #expect(writes.written == Array(bytes.prefix(5)))
    }

    /// A write that takes nothing would loop for ever: it is an I/O error.
    @Test func aWriteOfNothingIsAnIOError() {
        let writes = ScriptedWrites([0])
        let code = bytes.withUnsafeBytes { writeFully($0) { writes.write($0, $1) } }
        #expect(code == EIO)
        #expect(writes.offsets == [0])
    }

    @Test func anErrnoTheCallerRetriesIsTriedAgain() {
        let writes = ScriptedWrites([-Int(EAGAIN), 10])
        var asked: [Int32] = []
        let code = bytes.withUnsafeBytes {
            writeFully($0, retrying: { asked.append($0); return $0 == EAGAIN }) { writes.write($0, $1) }
        }
        #expect(code == 0)
        #expect(asked == [EAGAIN])
        #expect(writes.written == bytes)
    }

    /// Through a real pipe: FileIO.writeAll and pwriteAll on a real file write every byte where asked.
    @Test func realDescriptorsGetEveryByte() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        let payload = [UInt8](repeating: 0x61, count: 4096)
        #expect(payload.withUnsafeBytes { FileIO.writeAll(ends[1], $0) } == nil)
        close(ends[1])
        var received = [UInt8](repeating: 0, count: 8192)
        let count = received.withUnsafeMutableBytes { read(ends[0], $0.baseAddress, $0.count) }
        #expect(count == 4096)

        var template = Array("/tmp/uplink-write-fully-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        #expect(fd >= 0)
        let path = String(cString: template)
        defer { unlink(path); close(fd) }
        let fileSystem = PosixFileSystem()
        #expect(payload.withUnsafeBytes { fileSystem.pwriteAll(fd, $0, at: 100) } == 0)
        #expect(fileSystem.size(fd) == 4196)
    }
}
