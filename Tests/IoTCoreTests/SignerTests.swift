import Testing

@testable import IoTCore

@Suite("Signer")
struct SignerTests {
    @Test("the spec's test vector")
    func specVector() {
        let body = Array(#"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001"}"#.utf8)
        #expect(
            Signer.sign(body: body, secret: Secret("s3cr3tKey0000000"))
                == "00a241845eef3cc51dfa41e30059e34b70d85d9d0fe769942e8b7d71a0dd77ae")
    }

    @Test("RFC 4231 test case 2")
    func rfc4231() {
        #expect(
            Signer.sign(body: Array("what do ya want for nothing?".utf8), secret: Secret("Jefe"))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("empty key and body still sign")
    func empty() {
        let signature = Signer.sign(body: [UInt8](), secret: Secret(""))
        #expect(signature == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test("the auth body is the spec's compact JSON, signed as sent")
    func authBody() {
        let body = IoTCoreClient.authBody(
            productSN: "abcdefgh12345678", deviceSN: "device001", timestampMilliseconds: nil)
        #expect(String(decoding: body, as: UTF8.self) == #"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001"}"#)
        #expect(
            Signer.sign(body: body, secret: Secret("s3cr3tKey0000000"))
                == "00a241845eef3cc51dfa41e30059e34b70d85d9d0fe769942e8b7d71a0dd77ae")
        let stamped = IoTCoreClient.authBody(productSN: "p", deviceSN: "d", timestampMilliseconds: 1_524_448_722_000)
        #expect(
            String(decoding: stamped, as: UTF8.self) == #"{"ProductSN":"p","DeviceSN":"d","Timestamp":1524448722000}"#)
    }

    @Test("serial numbers are escaped as JSON strings")
    func escaping() {
        let body = IoTCoreClient.authBody(productSN: "a\"b\\c/d", deviceSN: "x\ny\u{1}", timestampMilliseconds: nil)
        #expect(String(decoding: body, as: UTF8.self) == #"{"ProductSN":"a\"b\\c/d","DeviceSN":"x\ny\u0001"}"#)
    }
}
