internal import CCrypto

/// Generates, with OpenSSL's libcrypto, an EC P-256 certificate authority and a server certificate it signs,
/// so tests and demos can speak real, verified TLS to the emulator without shipping keys in the repository.
enum SelfSignedCertificateAuthority {
    /// Validity starts this long before now, so a client whose clock lags a little still accepts it.
    static let backdating: Int = 3600
    /// Validity period after now.
    static let validity: Int = 30 * 24 * 3600

    /// A fresh CA and a server certificate for `IP:127.0.0.1`, `IP:::1`, `DNS:localhost` and `extraHosts`.
    static func generate(extraHosts: [String]) throws(EmulatorError) -> GeneratedCertificates {
        guard let caKey = uplink_emulator_ec_keygen("P-256") else { throw failure("generating the CA key") }
        defer { EVP_PKEY_free(caKey) }
        guard let serverKey = uplink_emulator_ec_keygen("P-256") else {
            throw failure("generating the server key")
        }
        defer { EVP_PKEY_free(serverKey) }

        let caCertificate = try makeCertificate(
            commonName: "Uplink IoT-Core emulator CA",
            publicKey: caKey,
            issuer: nil,
            signingKey: caKey,
            extensions: [
                (NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
                (NID_key_usage, "critical,keyCertSign,cRLSign"),
                (NID_subject_key_identifier, "hash"),
            ]
        )
        defer { X509_free(caCertificate) }

        var alternativeNames = ["IP:127.0.0.1", "IP:::1", "DNS:localhost"]
        for host in extraHosts where !host.isEmpty {
            let name = isIPAddress(host) ? "IP:\(host)" : "DNS:\(host)"
            if !alternativeNames.contains(name) { alternativeNames.append(name) }
        }
        let serverCertificate = try makeCertificate(
            commonName: "localhost",
            publicKey: serverKey,
            issuer: caCertificate,
            signingKey: caKey,
            extensions: [
                (NID_basic_constraints, "critical,CA:FALSE"),
                (NID_key_usage, "critical,digitalSignature"),
                (NID_ext_key_usage, "serverAuth"),
                (NID_subject_key_identifier, "hash"),
                (NID_authority_key_identifier, "keyid:always"),
                (NID_subject_alt_name, alternativeNames.joined(separator: ",")),
            ]
        )
        defer { X509_free(serverCertificate) }

        return GeneratedCertificates(
            caCertificatePEM: try pem("writing the CA certificate") { PEM_write_bio_X509($0, caCertificate) },
            serverCertificatePEM: try pem("writing the server certificate") {
                PEM_write_bio_X509($0, serverCertificate)
            },
            serverPrivateKeyPEM: try pem("writing the server key") {
                PEM_write_bio_PrivateKey($0, serverKey, nil, nil, 0, nil, nil)
            }
        )
    }

    /// A signed X.509 v3 certificate; `issuer == nil` makes it self-signed. The caller frees it.
    private static func makeCertificate(
        commonName: String,
        publicKey: OpaquePointer,
        issuer: OpaquePointer?,
        signingKey: OpaquePointer,
        extensions: [(Int32, String)]
    ) throws(EmulatorError) -> OpaquePointer {
        guard let certificate = X509_new() else { throw failure("allocating a certificate") }
        do throws(EmulatorError) {
            guard X509_set_version(certificate, 2) == 1 else { throw failure("setting the version") }  // 2 = v3
            // A random positive 63-bit serial: unique enough for certificates that live one run.
            let serial = LibCrypto.randomBytes(8).reduce(0) { ($0 << 8) | Int($1) } & Int.max
            guard ASN1_INTEGER_set(X509_get_serialNumber(certificate), serial) == 1 else {
                throw failure("setting the serial number")
            }
            guard X509_gmtime_adj(X509_getm_notBefore(certificate), -backdating) != nil,
                X509_gmtime_adj(X509_getm_notAfter(certificate), validity) != nil
            else { throw failure("setting the validity") }
            guard X509_set_pubkey(certificate, publicKey) == 1 else { throw failure("setting the public key") }

            let subject = X509_get_subject_name(certificate)
            for (field, value) in [("O", "Uplink"), ("CN", commonName)] {
                let bytes = Array(value.utf8)
                let added = bytes.withUnsafeBufferPointer {
                    X509_NAME_add_entry_by_txt(
                        subject, field, uplink_emulator_mbstring_asc(), $0.baseAddress, Int32($0.count), -1, 0)
                }
                guard added == 1 else { throw failure("setting the subject \(field)") }
            }
            let issuerName = issuer.map { X509_get_subject_name($0) } ?? subject
            guard X509_set_issuer_name(certificate, issuerName) == 1 else { throw failure("setting the issuer") }

            var context = X509V3_CTX()
            uplink_emulator_x509v3_set_ctx_nodb(&context)
            X509V3_set_ctx(&context, issuer ?? certificate, certificate, nil, nil, 0)
            for (nid, value) in extensions {
                guard let ext = X509V3_EXT_conf_nid(nil, &context, nid, value) else {
                    throw failure("building the extension \(nid) = \(value)")
                }
                let added = X509_add_ext(certificate, ext, -1)
                X509_EXTENSION_free(ext)
                guard added == 1 else { throw failure("adding the extension \(nid)") }
            }

            guard X509_sign(certificate, signingKey, EVP_sha256()) > 0 else { throw failure("signing") }
            return certificate
        } catch {
            X509_free(certificate)
            throw error
        }
    }

    /// What `write` puts into a memory BIO, as text.
    private static func pem(
        _ what: String,
        _ write: (OpaquePointer) -> Int32
    ) throws(EmulatorError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw failure(what) }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw failure(what) }
        var data: UnsafeMutablePointer<CChar>? = nil
        let length = uplink_emulator_bio_get_mem_data(bio, &data)
        guard let data, length > 0 else { throw failure(what) }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    }

    /// Whether `host` is written as an IPv4 or IPv6 address rather than a name.
    static func isIPAddress(_ host: String) -> Bool {
        if host.contains(":") { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in UInt8(part) != nil }
    }

    private static func failure(_ step: String) -> EmulatorError {
        EmulatorError(.certificateGeneration, "\(step) failed: \(LibCrypto.takeErrorDescription())")
    }
}
