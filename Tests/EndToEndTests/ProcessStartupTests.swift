import Foundation
import Testing

extension EndToEnd {
    /// What the `uplink` executable answers its shared libraries' constructors (CUplinkStartup), checked on the real
    /// process.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct ProcessStartupTests {
        /// GnuTLS, loaded through libcurl's librtmp, asks the executable whether to initialise itself; the answer has
        /// to be bound to the executable's `_gnutls_global_init_skip`, not GnuTLS's own weak default.
        @Test func gnuTLSConstructorFindsTheExecutablesSkipSymbol() throws {
            let result = try UplinkProcess.run(["--version"], environment: ["LD_DEBUG": "bindings"])
            #expect(result.status == 0, "stderr: \(result.stderr.suffix(2000))")
            let loadsGnuTLS = result.stderr.contains("libgnutls.so")
            // A libcurl built without librtmp loads no GnuTLS: nothing to skip then.
            guard loadsGnuTLS else { return }
            let binding = result.stderr.split(separator: "\n").first { $0.contains("`_gnutls_global_init_skip'") }
            let executable = UplinkProcess.executable.path
            #expect(
                binding?.contains("to \(executable) [0]") == true || binding?.contains("uplink [0]") == true,
                "GnuTLS's constructor calls its own default: \(binding ?? "no binding line")")
        }
    }
}
