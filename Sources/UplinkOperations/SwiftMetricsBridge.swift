import Metrics
import Prometheus

extension PrometheusExporter {
    /// Installs swift-prometheus as the process's swift-metrics backend and returns an exporter that appends
    /// its registry to every scrape: a Swift plugin that records with swift-metrics (`Counter(label:)`,
    /// `Timer(label:)`) shows up at `/metrics` with no extra wiring. Call once per process, before any metric
    /// is created (swift-metrics allows a single bootstrap).
    public static func bootstrapSwiftMetrics() -> PrometheusExporter {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return PrometheusExporter(metricsRegistry: registry)
    }
}
