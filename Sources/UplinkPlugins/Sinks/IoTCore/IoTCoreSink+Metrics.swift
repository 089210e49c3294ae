import IoTCore
import UplinkCore

extension IoTCoreClient {
    /// The client's counters as metrics, and its failure for `/health`; read when someone asks, never per
    /// request. No secret and no token appears in any name, label or value.
    ///
    /// - `uplink_iotcore_requests_total{retcode}`: answers with a RetCode, by RetCode
    /// - `uplink_iotcore_malformed_responses_total`, `uplink_iotcore_transport_failures_total`
    /// - `uplink_iotcore_retries_total`, `uplink_iotcore_auth_renewals_total`
    /// - `uplink_iotcore_delivered_messages_total`, `uplink_iotcore_delivered_bytes_total`,
    ///   `uplink_iotcore_refused_messages_total`
    /// - `uplink_iotcore_request_duration_seconds`: a histogram of complete responses
    /// - `uplink_iotcore_concurrency_limit`, `uplink_iotcore_max_concurrency`: gauges, the adaptive limit of
    ///   publishes in flight now and its ceiling (`max_concurrency`)
    /// - `uplink_iotcore_requests_in_flight`: gauge, publishes on the wire now
    func componentReport() -> ComponentReport {
        let statistics = self.statistics
        var samples: [MetricSample] = []
        for (retCode, count) in statistics.responsesByRetCode.sorted(by: { $0.key < $1.key }) {
            samples.append(
                MetricSample(
                    name: "uplink_iotcore_requests_total", help: "IoT-Core answers with a RetCode, by RetCode.",
                    labels: [("retcode", String(retCode))], value: .counter(Double(count))))
        }
        let counters: [(String, String, Int)] = [
            ("uplink_iotcore_malformed_responses_total", "IoT-Core answers without a readable RetCode.",
             statistics.malformedResponses),
            ("uplink_iotcore_transport_failures_total", "IoT-Core requests that got no complete answer.",
             statistics.transportFailures),
            ("uplink_iotcore_retries_total", "IoT-Core requests repeated after a failure.", statistics.retries),
            ("uplink_iotcore_auth_renewals_total", "Tokens obtained from IoT-Core /auth.", statistics.authRenewals),
            ("uplink_iotcore_delivered_messages_total", "Messages IoT-Core acknowledged with RetCode 0.",
             statistics.messagesDelivered),
            ("uplink_iotcore_delivered_bytes_total", "Body bytes IoT-Core acknowledged with RetCode 0.",
             statistics.bytesDelivered),
            ("uplink_iotcore_refused_messages_total", "Messages IoT-Core refused for good (dead-lettered or split).",
             statistics.messagesRefused),
        ]
        for (name, help, value) in counters {
            samples.append(MetricSample(name: name, help: help, value: .counter(Double(value))))
        }
        let latency = statistics.latency
        samples.append(
            MetricSample(
                name: "uplink_iotcore_request_duration_seconds", help: "Latency of IoT-Core requests with an answer.",
                value: .histogram(
                    HistogramValue(
                        bounds: ClientStatistics.LatencySummary.bucketBounds, bucketCounts: latency.bucketCounts,
                        sum: latency.sum, count: latency.count))))
        let gauges: [(String, String, Int)] = [
            ("uplink_iotcore_concurrency_limit", "Publishes the sink may have in flight now (the adaptive limit).",
             concurrencyLimit),
            ("uplink_iotcore_max_concurrency", "The most publishes in flight the adaptive limit may reach.",
             concurrencyCeiling),
            ("uplink_iotcore_requests_in_flight", "Publishes on the wire now.", requestsInFlight),
        ]
        for (name, help, value) in gauges {
            samples.append(MetricSample(name: name, help: help, value: .gauge(Double(value))))
        }
        let failure = self.failure.map { ComponentReport.Failure(since: $0.since, reason: "IoT-Core requests failing: \($0.reason)") }
        return ComponentReport(samples: samples, failure: failure)
    }
}
