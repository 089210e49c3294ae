import UplinkCore

/// The tumbling windows of `aggregate`, with time passed in (Unix ms).
///
/// Windows are aligned to the clock (`[k·window, (k+1)·window)` since the Unix epoch) and shared by every
/// key: when time passes the end, every open window closes at once. A window keeps only running
/// summaries (never its records) and the acknowledgements of every chunk that contributed, which its output
/// record carries on, so the inputs are acknowledged only once the aggregate is delivered. A chunk whose records
/// join several windows gives each a share of its acknowledgements (each aggregate is delivered on its own).
struct AggregateWindows: Sendable {
    enum Function: String, Sendable, CaseIterable {
        case mean, min, max, sum, count, first, last
    }

    /// A closed window: one output record and the acknowledgements of its inputs.
    struct Closed {
        var record: Record
        var acknowledgements: Acknowledgements
    }

    /// The running summary of one field in one window. Numeric functions see ints and floats only; `count`,
    /// `first` and `last` see any value but null (a missing field is not a value).
    private struct Summary {
        var count = 0
        var numbers = 0
        var total = 0.0
        var integerTotal: Int64? = 0
        var minimum: Value?
        var minimumNumber = Double.infinity
        var maximum: Value?
        var maximumNumber = -Double.infinity
        var first: Value?
        var last: Value?

        mutating func add(_ value: Value) {
            if value == .null { return }
            count += 1
            if first == nil { first = value }
            last = value
            let number: Double
            switch value {
            case .int(let integer):
                number = Double(integer)
                if let sum = integerTotal {
                    let (result, overflow) = sum.addingReportingOverflow(integer)
                    integerTotal = overflow ? nil : result
                }
            case .double(let double):
                number = double
                integerTotal = nil
            default:
                return
            }
            numbers += 1
            total += number
            if number < minimumNumber { minimumNumber = number; minimum = value }
            if number > maximumNumber { maximumNumber = number; maximum = value }
        }

        /// nil when the window saw no value the function applies to: the output then leaves the field out.
        func result(_ function: Function) -> Value? {
            switch function {
            case .count: return .int(Int64(count))
            case .first: return first
            case .last: return last
            case .min: return minimum
            case .max: return maximum
            case .mean: return numbers == 0 ? nil : .double(total / Double(numbers))
            case .sum:
                guard numbers > 0 else { return nil }
                if let integerTotal { return .int(integerTotal) }
                return .double(total)
            }
        }
    }

    private struct Window {
        var summaries: [Summary]
        var count = 0
        var acknowledgements = Acknowledgements()
        /// The input chunk whose share this window took last.
        var lastChunk = -1
    }

    let windowMilliseconds: Int64
    let fields: [(name: String, functions: [Function])]
    let groups: GroupKeys
    /// The start of the open windows (all keys share it); nil when none is open.
    private(set) var openStart: Int64?
    private var windows: [GroupKeys.Key: Window] = [:]
    /// Keys in the order their window opened, so output order follows input order.
    private var order: [GroupKeys.Key] = []

    init(windowMilliseconds: Int64, fields: [(name: String, functions: [Function])], groups: GroupKeys) {
        self.windowMilliseconds = windowMilliseconds
        self.fields = fields
        self.groups = groups
    }

    var openCount: Int { windows.count }

    /// When the open windows end, if any.
    var nextClose: Int64? { openStart.map { $0 + windowMilliseconds } }

    func start(of time: Int64) -> Int64 {
        let remainder = time % windowMilliseconds
        return time - (remainder < 0 ? remainder + windowMilliseconds : remainder)
    }

    /// Adds a record of input chunk number `chunk` (increasing from 0), whose acknowledgements are
    /// `acknowledgements`, at `now`. Windows that `now` is past close first (into `closed`). A record of a new key
    /// past `max_groups` becomes a window of its own, closed at once: nothing is lost; returns false in that case.
    @discardableResult
    mutating func add(
        _ record: Record, acknowledgements: Acknowledgements, chunk: Int, now: Int64, into closed: inout [Closed]
    ) -> Bool {
        closeExpired(now: now, into: &closed)
        // A wall clock set back joins the open windows rather than relabelling them.
        let start = openStart ?? start(of: now)
        let key = groups.key(of: record)
        // An open window is changed where it is in the table: one hash of the key per record, and no copy of its
        // summaries (a window copied out and stored back copied them on every record).
        if let index = windows.index(forKey: key) {
            add(record, acknowledgements: acknowledgements, chunk: chunk, to: &windows.values[index])
            openStart = start
            return true
        }
        var window = Window(summaries: Array(repeating: Summary(), count: fields.count))
        add(record, acknowledgements: acknowledgements, chunk: chunk, to: &window)
        guard windows.count < groups.maxGroups else {
            closed.append(output(key: key, window: window, start: start))
            return false
        }
        order.append(key)
        windows[key] = window
        openStart = start
        return true
    }

    private func add(_ record: Record, acknowledgements: Acknowledgements, chunk: Int, to window: inout Window) {
        window.count += 1
        if window.lastChunk != chunk {
            window.acknowledgements.merge(acknowledgements.shared())
            window.lastChunk = chunk
        }
        for (index, field) in fields.enumerated() {
            if let value = record.fields[field.name] { window.summaries[index].add(value) }
        }
    }

    /// Closes the open windows once `now` reaches their end.
    mutating func closeExpired(now: Int64, into closed: inout [Closed]) {
        if let end = nextClose, now >= end { closeAll(into: &closed) }
    }

    /// Closes every open window, whatever the time: at the end of input (shutdown, reload).
    mutating func closeAll(into closed: inout [Closed]) {
        guard let start = openStart else { return }
        for key in order {
            if let window = windows[key] { closed.append(output(key: key, window: window, start: start)) }
        }
        windows.removeAll(keepingCapacity: true)
        order.removeAll(keepingCapacity: true)
        openStart = nil
    }

    private func output(key: GroupKeys.Key, window: Window, start: Int64) -> Closed {
        var fields = Fields()
        fields.reserveCapacity(groups.fields.count + self.fields.count * 2 + 3)
        for (name, value) in zip(groups.fields, key) { fields.append(name, value) }
        for (index, field) in self.fields.enumerated() {
            for function in field.functions {
                if let value = window.summaries[index].result(function) {
                    fields.append(field.name + "_" + function.rawValue, value)
                }
            }
        }
        let end = start + windowMilliseconds
        fields.append("count", .int(Int64(window.count)))
        fields.append("window_start", .int(start))
        fields.append("window_end", .int(end))
        return Closed(record: Record(fields: fields, timestamp: end), acknowledgements: window.acknowledgements)
    }
}
