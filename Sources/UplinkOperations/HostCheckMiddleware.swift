import Hummingbird

/// Refuses, with 421 Misdirected Request, a request whose `Host` the ``HostAllowList`` does not accept, before
/// any route runs.
struct HostCheckMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowList: HostAllowList
    let statistics: APIServerStatistics

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard allowList.allows(request.head.authority) else {
            statistics.refused(.host)
            return APIServer.error(
                .misdirectedRequest,
                "this API answers requests for this machine only (the Host header names another; see api.allowed_hosts)")
        }
        return try await next(request, context)
    }
}
