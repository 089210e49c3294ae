import Benchmark
import IoTCore

/// IoT-Core's `/auth` signature: HMAC-SHA256 of the request body keyed with the device secret, as 64 hex digits.
/// Signed once per token (not per event); 1,000 signatures per iteration, so the figures are per signature.
func signerBenchmarks() {
    let body = Array(#"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001","Timestamp":1700000000000}"#.utf8)
    let secret = Secret("s3cr3tKey0000000")
    Benchmark("signer: HMAC-SHA256 of an /auth body (\(body.count) B)", configuration: kiloConfiguration) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(Signer.sign(body: body, secret: secret))
        }
    }
}
