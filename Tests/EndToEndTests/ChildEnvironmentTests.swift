import Foundation
import Testing

extension EndToEnd {
    /// Commands the agent starts do not inherit the variables its configuration reads secrets from: an `exec`
    /// source running `env` and a process plugin looking for the variable, in the real binary, with the secret
    /// in the agent's environment as the systemd unit's `EnvironmentFile` puts it there.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct ChildEnvironmentTests {
        static let secret = "s3cr3t-\(UUID().uuidString.prefix(8))"

        /// Runs a pipeline whose process plugin reads a token from `${UPLINK_E2E_SECRET}`; returns stdout.
        func run(passSecrets: Bool) throws -> String {
            let directory = UplinkProcess.temporaryDirectory()
            let plugin = directory.appendingPathComponent("plugin.sh").path
            try """
            #!/bin/sh
            read -r init
            printf '%s\\n' '{"type":"hello","protocol":1,"name":"envcheck","role":"source","output":"record"}'
            printf '{"type":"events","events":[{"plugin_sees":"%s"}]}\\n' "${UPLINK_E2E_SECRET:-nothing}"
            printf '%s\\n' '{"type":"done"}'
            """.write(toFile: plugin, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: plugin)
            let config = try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.path)
                sources:
                  command:
                    type: exec
                    command: [env]
                    mode: streaming
                    restart: false
                    pass_secrets: \(passSecrets)
                  plugin:
                    type: process
                    command: ['\(plugin)']
                    pass_secrets: \(passSecrets)
                    config:
                      api_token: ${UPLINK_E2E_SECRET}
                sinks:
                  environment: { type: stdout, inputs: [command] }
                  plugin_output: { type: stdout, inputs: [plugin] }
                """)
            let result = try UplinkProcess.run(["run", config], environment: ["UPLINK_E2E_SECRET": Self.secret])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains(Self.secret))
            return result.stdoutText
        }

        @Test func childrenDoNotSeeTheSecretsVariables() throws {
            let output = try run(passSecrets: false)
            // The exec source's output really is the environment, and the plugin really ran.
            #expect(output.contains("PATH="))
            #expect(output.contains(#""plugin_sees":"nothing""#))
            #expect(!output.contains(Self.secret))
            #expect(!output.contains("UPLINK_E2E_SECRET"))
        }

        @Test func passSecretsHandsThemOn() throws {
            let output = try run(passSecrets: true)
            #expect(output.contains("UPLINK_E2E_SECRET=\(Self.secret)"))
            #expect(output.contains(#""plugin_sees":"\#(Self.secret)""#))
        }
    }
}
