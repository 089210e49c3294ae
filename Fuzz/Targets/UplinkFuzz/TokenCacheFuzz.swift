#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
@testable import IoTCore

/// The token cache file, as a restart reads it (the bytes are the file's content).
///
/// Properties: no crash; a loaded token is usable in a header; a loaded token saved and loaded again is the
/// same token with the same expiry (to the microsecond: dates go through seconds since 1970 as a double); the
/// saved file is mode 0600.
enum TokenCacheFuzz {
    static let endpoint = "https://iot-https.cn-sh2.ucloud.cn"
    static let credentials = DeviceCredentials(productSN: "product", deviceSN: "device", deviceSecret: Secret("secret"))

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        let directory = Scratch.fresh("tokencache")
        let store = TokenStore(directory: directory, credentials: credentials)
        Scratch.writeFile(store.path, data)
        guard case .success(let token) = store.load(endpoint: endpoint) else { return }
        require(ServerAnswer(token: token.value.exposedValue).usableToken != nil, "a loaded token is not usable")
        use(token.info, at: Date(timeIntervalSince1970: 1_750_000_000))
        do {
            try store.save(token, endpoint: endpoint)
        } catch {
            require(false, "a loaded token does not save: \(error)")
        }
        require(store.fileMode() == 0o600, "the token cache file is not 0600")
        guard case .success(let again) = store.load(endpoint: endpoint) else {
            require(false, "a saved token does not load")
            return
        }
        require(again.value == token.value, "the token changed through the cache")
        require(again.info.expirySource == token.info.expirySource, "the expiry source changed through the cache")
        require(close(again.info.expiresAt, token.info.expiresAt), "the expiry changed through the cache")
        require(close(again.info.obtainedAt, token.info.obtainedAt), "the obtained time changed through the cache")
        switch (again.info.issuedAt, token.info.issuedAt) {
        case (nil, nil): break
        case (let a?, let b?): require(close(a, b), "the issue time changed through the cache")
        default: require(false, "the issue time appeared or vanished through the cache")
        }
    }

    /// What the client does with a token's times: is it usable, when to renew it, how long it lives.
    static func use(_ info: TokenInfo, at now: Date) {
        _ = info.isUsable(at: now)
        _ = info.needsRenewal(at: now, renewBefore: .seconds(300))
        require(info.lifetime >= .zero, "a negative token lifetime")
    }

    static func close(_ a: Date, _ b: Date) -> Bool {
        let x = a.timeIntervalSince1970
        let y = b.timeIntervalSince1970
        return x == y || abs(x - y) <= max(1e-6, abs(x) * 1e-12)
    }
}
