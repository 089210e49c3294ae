#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Stops the run with a message when a property does not hold: libFuzzer sees the abort as a crash and keeps
/// the input.
func require(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    guard !condition() else { return }
    printError("property violated at \(file):\(line): \(message())")
    abort()
}

/// Writes a line to stderr (libFuzzer's own output goes there too).
func printError(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
}

/// Reads a fuzz input as a few parameters followed by data: the parameters come from the first bytes, so the
/// fuzzer mutates settings and data alike, and a short input still runs with defaults (zeros).
struct FuzzInput {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    /// A value in `range`, from one byte.
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(byte()) % (range.count)
    }

    mutating func pick<T>(_ choices: [T]) -> T { choices[Int(byte()) % choices.count] }

    /// Up to `limit` bytes, their count given by the next byte.
    mutating func chunk(limit: Int = 255) -> ArraySlice<UInt8> {
        let count = min(Int(byte()), limit, bytes.count - index)
        defer { index += count }
        return ArraySlice(bytes[index..<(index + count)])
    }

    var rest: ArraySlice<UInt8> { index < bytes.count ? ArraySlice(bytes[index...]) : [] }
    var isAtEnd: Bool { index >= bytes.count }
}

/// A private scratch directory for targets that read files, on tmpfs when there is one (no disk writes per
/// input), emptied by each run.
enum Scratch {
    static let directory: String = {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        var template = Array("\(base)/uplink-fuzz-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        require(made != nil, "cannot create a scratch directory under \(base)")
        return String(cString: made!)
    }()

    /// A fresh, empty directory for one input.
    static func fresh(_ name: String) -> String {
        let path = directory + "/" + name
        removeTree(path)
        mkdir(path, 0o700)
        return path
    }

    static func writeFile(_ path: String, _ bytes: some Collection<UInt8>) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        require(fd >= 0, "cannot create \(path)")
        let data = Array(bytes)
        var offset = 0
        while offset < data.count {
            let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, data.count - offset) }
            require(written > 0, "cannot write \(path)")
            offset += written
        }
        close(fd)
    }

    static func removeTree(_ path: String) {
        guard let handle = opendir(path) else {
            unlink(path)
            return
        }
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            if entry.pointee.d_type == UInt8(DT_DIR) { removeTree(child) } else { unlink(child) }
        }
        closedir(handle)
        rmdir(path)
    }
}

/// Runs async code to completion from the fuzzer's (synchronous) thread.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        box.value = await body()
        done.signal()
    }
    done.wait()
    return box.value!
}

/// Carries a result from the task to the waiting thread; the semaphore orders the write before the read.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
