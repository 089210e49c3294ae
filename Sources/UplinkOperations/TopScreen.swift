/// The table `uplink top` shows: one row per component with its rates over the last refresh, totals, drops,
/// errors, requests in flight against the adaptive limit (`3/8`, `iotcore_http` sinks) and input buffer fill
/// (`fused` for a transform that runs in its producer's task and has no input buffer).
/// Pure text, so it is tested without a terminal.
public struct TopScreen: Sendable {
    public var address: String

    public init(address: String) {
        self.address = address
    }

    /// The rates of one component between two snapshots.
    public struct Rates: Sendable, Equatable {
        public var eventsInPerSecond: Double
        public var eventsOutPerSecond: Double
        public var bytesOutPerSecond: Double
    }

    /// Rates of `current` over `previous`, `elapsed` apart; zero for a component not seen before.
    public static func rates(
        _ current: ComponentsSnapshot.Component, previous: ComponentsSnapshot.Component?, elapsed: Duration
    ) -> Rates {
        let seconds = elapsed.seconds
        guard let previous, seconds > 0 else { return Rates(eventsInPerSecond: 0, eventsOutPerSecond: 0, bytesOutPerSecond: 0) }
        return Rates(
            eventsInPerSecond: max(0, Double(current.receivedEvents - previous.receivedEvents)) / seconds,
            eventsOutPerSecond: max(0, Double(current.sentEvents - previous.sentEvents)) / seconds,
            bytesOutPerSecond: max(0, Double(current.sentBytes - previous.sentBytes)) / seconds)
    }

    static let header = ["ID", "KIND", "TYPE", "STATE", "IN/s", "OUT/s", "OUT B/s", "IN", "OUT", "DROPPED", "ERRORS", "IN FLIGHT", "BUFFER"]

    /// The screen's lines: a title, the header, a row per component, and a footer (`hint`).
    public func lines(
        current: ComponentsSnapshot, previous: ComponentsSnapshot?, elapsed: Duration, width: Int = 200,
        hint: String? = nil
    ) -> [String] {
        var rows: [[String]] = [Self.header]
        for component in current.components {
            let before = previous?.components.first { $0.id == component.id }
            let rates = Self.rates(component, previous: before, elapsed: elapsed)
            let buffer = component.bufferFill.map { Self.percent($0) + (component.bufferEvents.map { " (\($0))" } ?? "") }
            var state = component.state
            if component.failing != nil { state = "failing" }
            rows.append([
                component.id, component.kind, component.type, state,
                Self.rate(rates.eventsInPerSecond), Self.rate(rates.eventsOutPerSecond),
                Self.bytes(rates.bytesOutPerSecond),
                Self.count(component.receivedEvents), Self.count(component.sentEvents),
                Self.count(component.droppedEvents), Self.count(component.errors), Self.inFlight(component),
                buffer ?? (component.fused ? "fused" : "-"),
            ])
        }
        var widths = Array(repeating: 0, count: Self.header.count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        // Text columns left-aligned, numbers right-aligned.
        let leftAligned: Set<Int> = [0, 1, 2, 3]
        var lines = [
            Self.clip(
                "uplink top — \(address) — up \(Self.duration(current.uptimeSeconds))\(current.ready ? "" : " — not ready")",
                width),
            "",
        ]
        for row in rows {
            let cells = row.enumerated().map { index, cell in
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                return leftAligned.contains(index) ? cell + padding : padding + cell
            }
            lines.append(Self.clip(cells.joined(separator: "  "), width))
        }
        let failing = current.components.filter { $0.failing != nil }
        if !failing.isEmpty {
            lines.append("")
            for component in failing { lines.append(Self.clip("! \(component.id): \(component.failing!)", width)) }
        }
        if let hint {
            lines.append("")
            lines.append(Self.clip(hint, width))
        }
        return lines
    }

    /// `in flight/limit` for a component with a concurrency limit, `-` for the others.
    static func inFlight(_ component: ComponentsSnapshot.Component) -> String {
        guard let limit = component.concurrencyLimit else { return "-" }
        return "\(component.requestsInFlight ?? 0)/\(limit)"
    }

    static func clip(_ line: String, _ width: Int) -> String {
        line.count <= width ? line : String(line.prefix(max(0, width)))
    }

    static func rate(_ value: Double) -> String {
        if value == 0 { return "0" }
        if value < 10 { return String(Double(Int((value * 10).rounded())) / 10) }
        return count(Int(value.rounded()))
    }

    /// `999`, `12.3k`, `4.5M`, `1.2G`.
    static func count(_ value: Int) -> String {
        let magnitude = Double(value)
        for (limit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] where magnitude >= limit {
            let scaled = magnitude / limit
            return (scaled < 100 ? String(Double(Int((scaled * 10).rounded())) / 10) : String(Int(scaled.rounded()))) + suffix
        }
        return String(value)
    }

    static func bytes(_ value: Double) -> String {
        let magnitude = value
        for (limit, suffix) in [(1024.0 * 1024 * 1024, "GiB"), (1024.0 * 1024, "MiB"), (1024.0, "KiB")] where magnitude >= limit {
            return String(Double(Int((magnitude / limit * 10).rounded())) / 10) + suffix
        }
        return String(Int(value.rounded())) + "B"
    }

    static func percent(_ ratio: Double) -> String { String(Int((ratio * 100).rounded())) + "%" }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        if total >= 3600 { return "\(total / 3600)h\(total % 3600 / 60)m" }
        if total >= 60 { return "\(total / 60)m\(total % 60)s" }
        return "\(total)s"
    }
}
