import Logging
import ServiceLifecycle
import UplinkCore
import UplinkOperations

extension Run {
    /// The services that run beside the pipeline in `uplink run`: the per-component summary lines and, when
    /// `api:` is set, the API listener. They come before the pipeline in the group, which shuts services down
    /// in reverse order: the pipeline drains first while `/metrics` and `/health` still answer.
    static func operationsServices(
        for pipeline: ReloadingPipeline, logger: Logger, onListening: @escaping @Sendable () -> Void = {}
    ) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // The listener and the summaries follow whichever pipeline is running (a reload replaces it); their own
        // settings are read at start-up.
        let global = pipeline.initial.global
        if let api = global.api {
            let server = APIServer(
                configuration: api,
                target: OperationsTarget(
                    components: { pipeline.current?.componentStatuses ?? [] },
                    isReady: { pipeline.current?.isReady ?? false }),
                exporter: PrometheusExporter.bootstrapSwiftMetrics(), logger: logger, onListening: { _ in onListening() })
            services.append(.init(service: server))
        }
        if global.summaryInterval > .zero {
            let summaries = SummaryLogger(interval: global.summaryInterval, logger: logger) {
                pipeline.current?.componentStatuses ?? []
            }
            services.append(.init(service: summaries))
        }
        return services
    }
}
