import Testing

@testable import IoTCore

@Suite("Topics, body limit, endpoints")
struct IoTCoreTopicTests {
    @Test(
        "accepted topics",
        arguments: [
            "/abcdefgh12345678/device001/upload", "/$system/PSN/DSN/tmodel/property/post",
            "/$system/PSN/DSN/shadow/upstream",
            "/a-b_c@d:e/f", "/x/.hidden/y",
        ])
    func accepted(_ topic: String) {
        #expect(TopicValidation.problem(in: topic) == nil)
    }

    @Test(
        "refused topics",
        arguments: [
            "", "no/leading/slash", "/a?b=1", "/a#", "/a/+/b", "/with space", "/tab\there", "/new\nline", "/ü",
            "/a%2Fb",
            "/a\\b", "/../auth", "/a/./b", "/a/..",
        ])
    func refused(_ topic: String) {
        #expect(TopicValidation.problem(in: topic) != nil)
    }

    static func client(_ transport: ScriptedTransport) throws -> IoTCoreClient {
        try IoTCoreClient(
            configuration: Fixtures.configuration(), logger: Fixtures.logger, transport: transport,
            time: ManualTime().source)
    }

    @Test("a refused topic is rejected locally, without a request")
    func rejectedLocally() async throws {
        let transport = ScriptedTransport { _, _ in Fixtures.publishOK() }
        let client = try Self.client(transport)
        for topic in ["/a?x=1", "/a b", "/a#"] {
            let outcome = try await client.publish(topic: topic, body: [1])
            guard case .rejected(nil, _) = outcome else {
                Issue.record("\(topic): \(outcome)")
                continue
            }
        }
        #expect(transport.requests.isEmpty)
    }

    @Test("131072 bytes are sent, 131073 are too large without a request")
    func bodyLimit() async throws {
        let transport = ScriptedTransport { request, _ in
            request.url.hasSuffix("/auth") ? Fixtures.authOK(token: "t.o.k") : Fixtures.publishOK()
        }
        let client = try Self.client(transport)
        let big = try await client.publish(topic: "/p/d/upload", body: [UInt8](repeating: 0x41, count: 131_073))
        guard case .tooLarge(nil, _) = big else {
            Issue.record("131073 bytes: \(big)")
            return
        }
        #expect(transport.requests.isEmpty)
        let fits = try await client.publish(topic: "/p/d/upload", body: [UInt8](repeating: 0x41, count: 131_072))
        #expect(fits == .delivered(messageID: "123456"))
        #expect(transport.publishRequests.first?.body.count == 131_072)
    }

    @Test("the topic becomes the URL path verbatim, $ included")
    func url() async throws {
        let transport = ScriptedTransport { request, _ in
            request.url.hasSuffix("/auth") ? Fixtures.authOK(token: "t.o.k") : Fixtures.publishOK()
        }
        let client = try Self.client(transport)
        _ = try await client.publish(topic: "/$system/PSN/DSN/tmodel/property/post", body: [])
        #expect(
            transport.publishRequests.first?.url
                == "https://iot.example.test/topic/$system/PSN/DSN/tmodel/property/post")
    }

    @Test(
        "endpoints",
        arguments: [
            ("https://http-cn-sh2.iot.ucloud.cn", "https://http-cn-sh2.iot.ucloud.cn"),
            ("https://127.0.0.1:8443/", "https://127.0.0.1:8443"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.10.0.3", "http://127.10.0.3"),
            ("https://gw.example/iot//", "https://gw.example/iot"),
            ("http://example.com", nil), ("http://localhost:80", nil), ("http://128.0.0.1", nil), ("ftp://x", nil),
            ("https://user:pw@host", nil), ("https://host/?q", nil), ("https://", nil), ("https://ho st", nil),
            ("http://127.0.0.1.evil.com", nil),
        ] as [(String, String?)])
    func endpoints(_ endpoint: String, _ expected: String?) {
        let result = try? IoTCoreClient.Configuration.normalizedEndpoint(endpoint).get()
        #expect(result == expected)
    }

    @Test("regions")
    func regions() {
        #expect(IoTCoreRegion.cnSh2.endpoint == "https://http-cn-sh2.iot.ucloud.cn")
        #expect(IoTCoreRegion.cnGd.endpoint == "https://http-cn-gd.iot.ucloud.cn")
        #expect(IoTCoreRegion.allCases.count == 2)
        #expect(IoTCoreClient.Configuration(region: .cnGd, credentials: Fixtures.credentials).problems().isEmpty)
    }
}
