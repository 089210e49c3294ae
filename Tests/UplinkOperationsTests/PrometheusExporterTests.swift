import Testing
import UplinkCore
import UplinkOperations

@Suite struct PrometheusExporterTests {
    static func text(_ components: [ComponentStatus]) -> String {
        String(decoding: PrometheusExporter().render(components), as: UTF8.self)
    }

    /// The series lines (not comments) of one metric name.
    static func series(_ text: String, _ name: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
    }

    @Test func everyComponentReportsTheCommonSetUnderTheSameNames() {
        let metrics = ComponentMetrics()
        metrics.received(events: 10, bytes: 1000)
        metrics.sent(events: 8, bytes: 640)
        metrics.dropped(1, reason: .parseError)
        metrics.dropped(1, reason: .deadLetter)
        metrics.error(2)
        metrics.setState(.running)
        let text = Self.text([
            component(
                "parse", buffer: BufferStatus(kind: .memory, events: 3, maxEvents: 4096, droppedFull: 5), metrics: metrics),
            component("console", type: "stdin", role: .source),
        ])
        let labels = #"component_id="parse",component_type="json",component_kind="transform""#
        #expect(text.contains("uplink_component_received_events_total{\(labels)} 10"))
        #expect(text.contains("uplink_component_received_bytes_total{\(labels)} 1000"))
        #expect(text.contains("uplink_component_sent_events_total{\(labels)} 8"))
        #expect(text.contains("uplink_component_sent_bytes_total{\(labels)} 640"))
        #expect(text.contains("uplink_component_errors_total{\(labels)} 2"))
        #expect(text.contains(#"uplink_component_dropped_events_total{\#(labels),reason="parse_error"} 1"#))
        #expect(text.contains(#"uplink_component_dropped_events_total{\#(labels),reason="dead_letter"} 1"#))
        // The input buffer's drops are the component's, as channel_full.
        #expect(text.contains(#"uplink_component_dropped_events_total{\#(labels),reason="channel_full"} 5"#))
        #expect(text.contains("uplink_buffer_events{\(labels)} 3"))
        #expect(text.contains("uplink_buffer_max_events{\(labels)} 4096"))
        #expect(text.contains("# TYPE uplink_component_sent_events_total counter"))
        #expect(text.contains("# TYPE uplink_buffer_events gauge"))
        // Every reason is listed for every component, zeros included, so rate() works from the start.
        #expect(Self.series(text, "uplink_component_dropped_events_total").count == 2 * DropReason.allCases.count)
        #expect(Self.series(text, "uplink_component_sent_events_total").count == 2)
        #expect(Self.series(text, "uplink_buffer_events").count == 1, "sources have no input buffer")
    }

    @Test func componentsPublishTheirOwnCountersGaugesAndHistograms() {
        let metrics = ComponentMetrics()
        metrics.counter("uplink_serial_reconnects_total", help: "Reconnects.").increment(by: 3)
        metrics.gauge("uplink_file_open_files", help: "Open files.").set(2)
        metrics.addReporter {
            ComponentReport(samples: [
                MetricSample(
                    name: "uplink_iotcore_requests_total", help: "By RetCode.", labels: [("retcode", "0")],
                    value: .counter(7)),
                MetricSample(
                    name: "uplink_iotcore_requests_total", help: "By RetCode.", labels: [("retcode", "130")],
                    value: .counter(2)),
                MetricSample(
                    name: "uplink_iotcore_request_duration_seconds", help: "Latency.",
                    value: .histogram(HistogramValue(bounds: [0.1, 1], bucketCounts: [4, 3, 2], sum: 5.5, count: 9))),
            ])
        }
        let text = Self.text([component("cloud", type: "iotcore_http", role: .sink, metrics: metrics)])
        let labels = #"component_id="cloud",component_type="iotcore_http",component_kind="sink""#
        #expect(text.contains("uplink_serial_reconnects_total{\(labels)} 3"))
        #expect(text.contains("uplink_file_open_files{\(labels)} 2"))
        #expect(text.contains(#"uplink_iotcore_requests_total{\#(labels),retcode="0"} 7"#))
        #expect(text.contains(#"uplink_iotcore_requests_total{\#(labels),retcode="130"} 2"#))
        #expect(text.contains("# TYPE uplink_iotcore_request_duration_seconds histogram"))
        // Buckets are cumulative, +Inf holds the count.
        #expect(text.contains(#"uplink_iotcore_request_duration_seconds_bucket{\#(labels),le="0.1"} 4"#))
        #expect(text.contains(#"uplink_iotcore_request_duration_seconds_bucket{\#(labels),le="1"} 7"#))
        #expect(text.contains(#"uplink_iotcore_request_duration_seconds_bucket{\#(labels),le="+Inf"} 9"#))
        #expect(text.contains("uplink_iotcore_request_duration_seconds_sum{\(labels)} 5.5"))
        #expect(text.contains("uplink_iotcore_request_duration_seconds_count{\(labels)} 9"))
    }

    /// swift-prometheus stops the process on a name registered twice with different types or help: a plugin
    /// that does that loses its sample, the scrape still works.
    @Test func conflictingSamplesAreLeftOutInsteadOfCrashing() {
        let metrics = ComponentMetrics()
        metrics.addReporter {
            ComponentReport(samples: [
                MetricSample(name: "my_metric", help: "A.", value: .counter(1)),
                MetricSample(name: "my_metric", help: "A.", value: .gauge(2)),
                MetricSample(name: "uplink_component_sent_events_total", help: "Other help.", value: .gauge(3)),
                MetricSample(name: "bad name!", help: "x", value: .gauge(1)),
                MetricSample(name: "labelled", help: "L.", labels: [("component_id", "spoofed")], value: .gauge(4)),
            ])
        }
        let text = Self.text([component("p", metrics: metrics)])
        #expect(text.contains(#"my_metric{component_id="p",component_type="json",component_kind="transform"} 1"#))
        #expect(!text.contains("bad name"))
        #expect(!text.contains("spoofed"), "a plugin cannot override the component's labels")
        #expect(Self.series(text, "uplink_component_sent_events_total").count == 1)
    }

    @Test func labelValuesAreEscaped() {
        let metrics = ComponentMetrics()
        metrics.addReporter {
            ComponentReport(samples: [
                MetricSample(
                    name: "uplink_file_bytes_behind", help: "Behind.", labels: [("file", #"/var/log/a "b"\c.log"#)],
                    value: .gauge(10))
            ])
        }
        let text = Self.text([component("tail", type: "file", role: .source, metrics: metrics)])
        #expect(text.contains(#"file="/var/log/a \"b\"\\c.log"} 10"#), "\(text)")
    }
}

@Suite struct HealthReportTests {
    @Test func aSinkFailingLongerThanTheLimitIsUnhealthy() {
        let metrics = ComponentMetrics()
        let since = ContinuousClock.now
        metrics.addReporter { ComponentReport(failure: .init(since: since, reason: "IoT-Core requests failing: RetCode 130")) }
        let components = [component("cloud", type: "iotcore_http", role: .sink, metrics: metrics)]

        let early = HealthReport.evaluate(components, unhealthyAfter: .seconds(60), now: since + .seconds(10))
        #expect(early.isHealthy)
        #expect(early.degraded.map(\.componentID) == ["cloud"])

        let late = HealthReport.evaluate(components, unhealthyAfter: .seconds(60), now: since + .seconds(61))
        #expect(!late.isHealthy)
        #expect(late.problems.map(\.componentID) == ["cloud"])
        let json = String(decoding: late.json, as: UTF8.self)
        #expect(json.contains(#""status":"unhealthy""#))
        #expect(json.contains(#""reason":"IoT-Core requests failing: RetCode 130""#))
        #expect(json.contains(#""failing_seconds":61"#))
    }

    @Test func aComponentThatDiedIsUnhealthy() {
        let metrics = ComponentMetrics()
        metrics.setState(.failed)
        let report = HealthReport.evaluate([component("parse", metrics: metrics)], unhealthyAfter: .seconds(60))
        #expect(!report.isHealthy)
        #expect(report.problems.first?.reason == "the component stopped with an error")
    }

    @Test func finishedComponentsAreHealthy() {
        let metrics = ComponentMetrics()
        metrics.setState(.finished)
        #expect(HealthReport.evaluate([component("parse", metrics: metrics)], unhealthyAfter: .seconds(1)).isHealthy)
    }
}
