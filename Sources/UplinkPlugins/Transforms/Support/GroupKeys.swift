#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CUplinkLinux
import UplinkCore

/// The `group_by` option shared by `deadband`, `aggregate` and `throttle`: which fields make a record's key, and
/// how many distinct keys a stage may hold state for (`max_groups`), so a field with unbounded values (a request
/// ID by mistake) cannot grow the stage's memory without limit.
struct GroupKeys: Sendable {
    /// A record's key: the values of the `group_by` fields in order; a missing field counts as null.
    typealias Key = [Value]

    let fields: [String]
    let maxGroups: Int

    static let defaultMaxGroups = 10_000

    /// The options, `whenFull` saying what the stage does with a new key past `max_groups`.
    static func options(whenFull: String) -> [OptionSpec] {
        [
            OptionSpec("group_by", .list(of: "field names"), "fields whose values make a record's key; each key keeps its own state (a missing field counts as null); default: one key for all"),
            OptionSpec("max_groups", .int, default: "\(defaultMaxGroups)", "the most keys held at once (1 to 1000000); past it, \(whenFull), counted in uplink_transform_group_limit_hits_total"),
        ]
    }

    static func read(from config: ConfigReader) -> GroupKeys {
        let fields = config.stringList("group_by") ?? []
        if fields.contains(where: \.isEmpty) { config.error("'group_by' fields must not be empty", at: "group_by") }
        let maxGroups = config.int("max_groups", default: defaultMaxGroups, range: 1...1_000_000)
        return GroupKeys(fields: fields, maxGroups: maxGroups)
    }

    init(fields: [String] = [], maxGroups: Int = defaultMaxGroups) {
        self.fields = fields
        self.maxGroups = maxGroups
    }

    func key(of record: Record) -> Key {
        fields.map { record.fields[$0] ?? .null }
    }

    /// The counter of keys refused at `max_groups`.
    static func limitHits(_ context: ComponentContext) -> ExtraCounter {
        context.metrics.counter(
            "uplink_transform_group_limit_hits_total",
            help: "Records whose group_by key was new while the stage already held max_groups keys")
    }
}

/// Wall-clock time in Unix milliseconds; a stage holds one so tests can inject time.
struct UnixClock: Sendable {
    let now: @Sendable () -> Int64

    static let system = UnixClock {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}
