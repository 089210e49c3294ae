/// How the emulator secures its listener.
public enum EmulatorTLS: Sendable, Hashable {
    /// Plain HTTP. Only for in-process use where a client explicitly allows it; the real service is HTTPS only.
    case none
    /// HTTPS with a certificate authority generated at start-up (EC P-256), and a server certificate it signs
    /// for `IP:127.0.0.1`, `DNS:localhost` and the configured host, valid from one hour ago for 30 days.
    /// The CA is exposed as ``IoTCoreEmulator/caCertificatePEM`` and, when `caCertificateOutput` is a path,
    /// written there with mode 0644 so clients (curl `--cacert`, the agent's `ca_file`) can trust it.
    case selfSigned(caCertificateOutput: String?)
    /// HTTPS with a certificate chain and private key loaded from PEM files.
    case files(certificateChain: String, privateKey: String)
}
