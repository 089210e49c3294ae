import Synchronization
import UplinkCore

/// How far behind the end of each tailed file the source is, published by the tailer once per round and read
/// by the API: `uplink_file_bytes_behind{file}` per file and `uplink_file_open_files`.
final class FileLag: Sendable {
    private let behind = Mutex<[(path: String, bytes: Int64)]>([])

    func update(_ files: some Sequence<TailedFile>) {
        let values = files.map { (path: $0.path, bytes: max(0, $0.lastSize - $0.readOffset)) }
        behind.withLock { $0 = values }
    }

    func report() -> ComponentReport {
        let files = behind.withLock { $0 }.sorted { $0.path < $1.path }
        var samples = files.map { file in
            MetricSample(
                name: "uplink_file_bytes_behind", help: "Bytes between the read position and the end of a tailed file.",
                labels: [("file", file.path)], value: .gauge(Double(file.bytes)))
        }
        samples.append(
            MetricSample(name: "uplink_file_open_files", help: "Files the source is reading.", value: .gauge(Double(files.count))))
        return ComponentReport(samples: samples)
    }
}
