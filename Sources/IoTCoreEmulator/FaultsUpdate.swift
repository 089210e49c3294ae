/// `POST /_emulator/faults` body; every field is optional and only the given ones change.
struct FaultsUpdate: Decodable, Sendable {
    var ratio_130: Double?
    var ratio_100077: Double?
    var auth_ratio_130: Double?
    var latency_ms: Double?
    /// Refuse new connections for this many seconds from now; 0 stops refusing.
    var refuse_connections_seconds: Double?
}
