import FoundationEssentials
import Glibc
import Testing

@testable import IoTCore

@Suite("Token store")
struct IoTCoreTokenStoreTests {
    static let endpoint = "https://http-cn-sh2.iot.ucloud.cn"

    static func token() -> AuthToken {
        let text = Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000)
        return AuthToken(
            value: Secret(text), info: TokenInfo(token: text, receivedAt: Date(timeIntervalSince1970: 1_700_000_000)))
    }

    @Test("round trip, file mode 0600, atomic (no temporary left)")
    func roundTrip() throws {
        let directory = Fixtures.temporaryDirectory() + "/nested/state"
        defer { Fixtures.removeTokenDirectory(directory) }
        let store = TokenStore(directory: directory, credentials: Fixtures.credentials)
        #expect(store.path == directory + "/iotcore-token-abcdefgh12345678-device001.json")
        let token = Self.token()
        try store.save(token, endpoint: Self.endpoint)
        #expect(store.fileMode() == 0o600)
        #expect(access(store.path + ".tmp", F_OK) != 0)

        let loaded = try store.load(endpoint: Self.endpoint).get()
        #expect(loaded == token)

        // Saving again replaces the file.
        var newer = token
        newer.value = Secret("other.token.value")
        try store.save(newer, endpoint: Self.endpoint)
        #expect(try store.load(endpoint: Self.endpoint).get().value == Secret("other.token.value"))
        #expect(store.fileMode() == 0o600)
        store.remove()
    }

    @Test("a token for another endpoint, a corrupt file or no file load as failures")
    func failures() throws {
        let directory = Fixtures.temporaryDirectory()
        defer { Fixtures.removeTokenDirectory(directory) }
        let store = TokenStore(directory: directory, credentials: Fixtures.credentials)
        #expect(throws: IoTCoreError.self) { try store.load(endpoint: Self.endpoint).get() }
        try store.save(Self.token(), endpoint: Self.endpoint)
        #expect(throws: IoTCoreError.self) { try store.load(endpoint: "https://127.0.0.1:8443").get() }

        let fd = open(store.path, O_WRONLY | O_TRUNC)
        _ = "{not json".withCString { write(fd, $0, 9) }
        close(fd)
        #expect(throws: IoTCoreError.self) { try store.load(endpoint: Self.endpoint).get() }
        store.remove()
    }

    @Test("serial numbers cannot escape the directory")
    func fileNames() {
        let store = TokenStore(
            directory: "/var/lib/uplink/",
            credentials: DeviceCredentials(productSN: "../../etc", deviceSN: "a/b c", deviceSecret: Secret("s")))
        #expect(store.path == "/var/lib/uplink/iotcore-token-.._.._etc-a_b_c.json")
        #expect(TokenStore.fileComponent("..") == "_")
    }

    @Test("a restart uses the cached token instead of authenticating")
    func restart() async throws {
        let directory = Fixtures.temporaryDirectory()
        defer { Fixtures.removeTokenDirectory(directory) }
        let time = ManualTime()
        let token = Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000)
        let transport = ScriptedTransport { request, _ in
            request.url.hasSuffix("/auth") ? Fixtures.authOK(token: token) : Fixtures.publishOK()
        }
        let configuration = Fixtures.configuration(stateDirectory: directory)
        do {
            let client = try IoTCoreClient(
                configuration: configuration, logger: Fixtures.logger, transport: transport, time: time.source)
            #expect(try await client.publish(topic: "/p/d/upload", body: [1]) == .delivered(messageID: "123456"))
        }
        #expect(transport.authRequests.count == 1)

        let restarted = try IoTCoreClient(
            configuration: configuration, logger: Fixtures.logger, transport: transport, time: time.source)
        #expect(restarted.currentToken?.expiresAt == Date(timeIntervalSince1970: 1_700_604_800))
        #expect(try await restarted.publish(topic: "/p/d/upload", body: [2]) == .delivered(messageID: "123456"))
        #expect(transport.authRequests.count == 1)
        #expect(transport.publishRequests.last?.headers.first { $0.name == "Password" }?.value == token)
    }

    @Test("a changed secret does not use the token cached with the old one; a wrong one fails at once")
    func changedSecretAuthenticatesAgain() async throws {
        let directory = Fixtures.temporaryDirectory()
        defer { Fixtures.removeTokenDirectory(directory) }
        let time = ManualTime()
        let token = Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000)
        let good = Fixtures.credentials
        // The service knows only the good secret: /auth with another signature is refused with 171.
        let transport = ScriptedTransport { request, _ in
            guard request.url.hasSuffix("/auth") else { return Fixtures.publishOK() }
            let expected = Signer.sign(body: request.body, secret: good.deviceSecret)
            let signature = request.headers.first { $0.name == "Authorization" }?.value
            return signature == expected ? Fixtures.authOK(token: token) : Fixtures.retCode(171, message: "auth failed")
        }
        do {
            let client = try IoTCoreClient(
                configuration: Fixtures.configuration(stateDirectory: directory), logger: Fixtures.logger,
                transport: transport, time: time.source)
            #expect(try await client.publish(topic: "/p/d/upload", body: [1]) == .delivered(messageID: "123456"))
        }
        var wrong = Fixtures.configuration(stateDirectory: directory)
        wrong.credentials.deviceSecret = Secret("not-the-secret")
        let mistaken = try IoTCoreClient(
            configuration: wrong, logger: Fixtures.logger, transport: transport, time: time.source)
        #expect(mistaken.currentToken == nil, "the token cached with the good secret must not be used")
        let error = await #expect(throws: IoTCoreError.self) { try await mistaken.authenticate() }
        #expect(error?.code == .credentials)
        #expect(transport.authRequests.count == 2)

        // The file records a fingerprint, never the secret.
        let text = String(decoding: try #require(FileManager.default.contents(atPath: TokenStore(directory: directory, credentials: good).path)), as: UTF8.self)
        #expect(!text.contains(good.deviceSecret.exposedValue))
        #expect(text.contains(CredentialFingerprint.of(good)))
        // ... which is not the /auth signature of the device (it would authenticate whoever reads the file).
        let authBody = IoTCoreClient.authBody(productSN: good.productSN, deviceSN: good.deviceSN, timestampMilliseconds: nil)
        #expect(CredentialFingerprint.of(good) != Signer.sign(body: authBody, secret: good.deviceSecret))
    }
}
