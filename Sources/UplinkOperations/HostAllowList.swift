import UplinkCore

/// Which `Host` headers the API answers, so that a web page in a browser on the board cannot reach it through
/// DNS rebinding (a name of the attacker's that resolves to 127.0.0.1 after the page loaded): such a request
/// carries the attacker's name, which is refused.
///
/// - A loopback listener (the default) accepts `localhost` and loopback literals (`127.x.x.x`, `[::1]`).
/// - Another address also accepts any IP literal (rebinding needs a name) and the names in `api.allowed_hosts`.
///
/// Any port is accepted. A request without `Host` (HTTP/1.0) is accepted: browsers always send one.
struct HostAllowList: Sendable {
    let loopbackOnly: Bool
    let names: Set<String>

    init(configuration: APIConfig) {
        loopbackOnly = configuration.isLoopback
        names = Set(configuration.allowedHosts.map { $0.lowercased() })
    }

    func allows(_ authority: String?) -> Bool {
        guard let authority else { return true }
        guard let host = Self.host(of: authority) else { return false }
        if host == "localhost" || Self.isIPv4Loopback(host) || host == "::1" { return true }
        if loopbackOnly { return false }
        return Self.isIPv4Literal(host) || Self.isIPv6Literal(host) || names.contains(host)
    }

    /// The host part of `host[:port]` or `[v6][:port]`, lowercased, without a trailing dot; nil if malformed.
    static func host(of authority: String) -> String? {
        var host: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let rest = authority[authority.index(after: close)...]
            guard rest.isEmpty || rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isASCIIDigit) else { return nil }
            guard isIPv6Literal(host) else { return nil }
        } else {
            host = Substring(authority)
            if let colon = authority.firstIndex(of: ":") {
                host = authority[..<colon]
                guard authority[authority.index(after: colon)...].allSatisfy(\.isASCIIDigit) else { return nil }
            }
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        guard !host.isEmpty else { return nil }
        return host.lowercased()
    }

    static func isIPv4Literal(_ host: some StringProtocol) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && UInt8($0) != nil }
    }

    static func isIPv4Loopback(_ host: some StringProtocol) -> Bool {
        isIPv4Literal(host) && host.hasPrefix("127.")
    }

    static func isIPv6Literal(_ host: some StringProtocol) -> Bool {
        host.contains(":") && host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
