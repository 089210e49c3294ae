public import UplinkCore

/// The answer of `/health`: healthy unless a component died or has been failing longer than `unhealthy_after`.
public struct HealthReport: Sendable, Equatable {
    /// Why the pipeline is unhealthy, one entry per component.
    public struct Problem: Sendable, Equatable {
        public var componentID: String
        public var reason: String
        /// How long it has been failing (nil for a component that died).
        public var failingFor: Duration?
    }

    public var problems: [Problem]
    /// Components failing for less than `unhealthy_after`: not a problem yet, shown for the curious.
    public var degraded: [Problem]

    public var isHealthy: Bool { problems.isEmpty }

    /// Evaluates `components` at `now`.
    public static func evaluate(
        _ components: [ComponentStatus], unhealthyAfter: Duration, now: ContinuousClock.Instant = .now
    ) -> HealthReport {
        var problems: [Problem] = []
        var degraded: [Problem] = []
        for component in components {
            if component.metrics.state == .failed {
                problems.append(Problem(componentID: component.id, reason: "the component stopped with an error"))
                continue
            }
            guard let failure = component.metrics.report().failure else { continue }
            let failingFor = now - failure.since
            let problem = Problem(componentID: component.id, reason: failure.reason, failingFor: failingFor)
            if failingFor >= unhealthyAfter {
                problems.append(problem)
            } else {
                degraded.append(problem)
            }
        }
        return HealthReport(problems: problems, degraded: degraded)
    }

    /// `{"status":"healthy"|"unhealthy","problems":[{"component_id":…,"reason":…,"failing_seconds":…}],…}`
    public var json: [UInt8] {
        var output: [UInt8] = []
        output += #"{"status":"#.utf8
        JSONWriter.appendString(isHealthy ? "healthy" : "unhealthy", to: &output)
        output += #","problems":"#.utf8
        Self.append(problems, to: &output)
        output += #","degraded":"#.utf8
        Self.append(degraded, to: &output)
        output += "}\n".utf8
        return output
    }

    private static func append(_ problems: [Problem], to output: inout [UInt8]) {
        output.append(UInt8(ascii: "["))
        for (index, problem) in problems.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            output += #"{"component_id":"#.utf8
            JSONWriter.appendString(problem.componentID, to: &output)
            output += #","reason":"#.utf8
            JSONWriter.appendString(problem.reason, to: &output)
            if let failingFor = problem.failingFor {
                output += #","failing_seconds":"#.utf8
                JSONWriter.appendDouble((failingFor.seconds * 10).rounded() / 10, to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
        output.append(UInt8(ascii: "]"))
    }
}
