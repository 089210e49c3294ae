import UplinkCore

/// The report-by-exception decision of `deadband`, per `group_by` key, with time passed in (Unix ms).
///
/// A record is emitted when it is the first of its key, when `max_interval` has passed since the key's last
/// emitted record, or when a watched field moved past its band since that record. Two numbers (int or float)
/// compare by their distance; anything else (a missing field, null, a string, a bool) compares by equality, so a
/// field appearing, disappearing, turning null or changing text counts as a change. On emission the record's
/// watched values become the reference for the next.
struct DeadbandFilter: Sendable {
    /// How far a field may move before it counts as changed.
    enum Band: Sendable, Equatable {
        case absolute(Double)
        /// Percent of the last emitted value's magnitude; from a last value of 0 any move counts.
        case percent(Double)

        /// `0.5` or `2%`; nil when it is not a finite number >= 0.
        init?(_ text: String) {
            let trimmed = Substring(text)
            if trimmed.hasSuffix("%") {
                guard let number = Double(trimmed.dropLast()), number.isFinite, number >= 0 else { return nil }
                self = .percent(number)
            } else {
                guard let number = Double(trimmed), number.isFinite, number >= 0 else { return nil }
                self = .absolute(number)
            }
        }

        func exceeded(from last: Double, to current: Double) -> Bool {
            let distance = abs(current - last)
            switch self {
            case .absolute(let band): return distance > band
            case .percent(let band): return distance > abs(last) * band / 100
            }
        }
    }

    enum Decision: Equatable {
        case emit
        case suppress
        /// A new key arrived while `maxGroups` keys were held: the record passes unfiltered (nothing is lost)
        /// and is counted.
        case emitOverLimit
    }

    private struct State {
        var values: [Value?]
        var emittedAt: Int64
    }

    let fields: [(name: String, band: Band)]
    let groups: GroupKeys
    /// Milliseconds; nil for no heartbeat.
    let maxInterval: Int64?
    private var states: [GroupKeys.Key: State] = [:]

    init(fields: [(name: String, band: Band)], groups: GroupKeys, maxInterval: Int64?) {
        self.fields = fields
        self.groups = groups
        self.maxInterval = maxInterval
    }

    var keyCount: Int { states.count }

    mutating func decide(_ record: Record, now: Int64) -> Decision {
        let key = groups.key(of: record)
        let values = fields.map { record.fields[$0.name] }
        guard var state = states[key] else {
            guard states.count < groups.maxGroups else { return .emitOverLimit }
            states[key] = State(values: values, emittedAt: now)
            return .emit
        }
        var emit = false
        if let maxInterval, now - state.emittedAt >= maxInterval {
            emit = true
        } else {
            for (index, field) in fields.enumerated() where Self.changed(state.values[index], values[index], band: field.band) {
                emit = true
                break
            }
        }
        guard emit else { return .suppress }
        state.values = values
        state.emittedAt = now
        states[key] = state
        return .emit
    }

    static func changed(_ last: Value?, _ current: Value?, band: Band) -> Bool {
        if let last = last.flatMap(number), let current = current.flatMap(number) {
            return band.exceeded(from: last, to: current)
        }
        return last != current
    }

    private static func number(_ value: Value) -> Double? {
        switch value {
        case .int(let number): return Double(number)
        case .double(let number): return number
        default: return nil
        }
    }
}
