/// PEM texts of a generated certificate authority and the server certificate it signed.
struct GeneratedCertificates: Sendable {
    /// The CA certificate clients trust.
    var caCertificatePEM: String
    /// The server certificate (leaf), signed by the CA.
    var serverCertificatePEM: String
    /// The server's private key (PKCS #8).
    var serverPrivateKeyPEM: String
}
