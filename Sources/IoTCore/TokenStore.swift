import FoundationEssentials
import Glibc
import UplinkFileSystem

/// The token cache: one small JSON file per device, so a restart does not authenticate for nothing.
///
/// The file is `<directory>/iotcore-token-<ProductSN>-<DeviceSN>.json`, mode 0600, replaced with the one atomic
/// write (``AtomicFile``: a temporary file opened with `O_NOFOLLOW`, fsync, rename, directory fsync, each
/// checked) so a power cut leaves the old or the new file, never half of one. A cached token is only used
/// against the endpoint it was issued for, and only with the credentials it was obtained with
/// (``CredentialFingerprint``): a changed secret authenticates again.
struct TokenStore: Sendable {
    /// The cache file.
    let path: String
    /// The directory holding it.
    let directory: String
    /// Where the bytes go (the real disk, or a simulated one in crash-state tests).
    let fileSystem: any FileSystem
    /// The fingerprint of the credentials this store serves; a cached token with another one is not used.
    let fingerprint: String

    static let maxFileSize = 65_536

    init(directory: String, credentials: DeviceCredentials, fileSystem: any FileSystem = PosixFileSystem()) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.fingerprint = CredentialFingerprint.of(credentials)
        let product = Self.fileComponent(credentials.productSN)
        let device = Self.fileComponent(credentials.deviceSN)
        let name = "iotcore-token-\(product)-\(device).json"
        self.path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Keeps a serial number from escaping the directory or making an odd file name.
    static func fileComponent(_ text: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@".utf8)
        let bytes = text.utf8.prefix(100).map { allowed.contains($0) ? $0 : UInt8(ascii: "_") }
        let name = String(decoding: bytes, as: UTF8.self)
        return name.isEmpty || name.allSatisfy({ $0 == "." }) ? "_" : name
    }

    private struct File: Codable {
        var version: Int
        var endpoint: String
        var token: String
        var expiresAt: Double
        var obtainedAt: Double
        var issuedAt: Double?
        var expirySource: String
        /// ``CredentialFingerprint`` of the credentials the token was obtained with (version 2 on).
        var credentials: String?
    }

    /// Version 1 files carry no fingerprint and are not trusted: they cost one `/auth` after an upgrade.
    static let fileVersion = 2

    /// The cached token for `endpoint`, or why there is none usable.
    func load(endpoint: String) -> Result<AuthToken, IoTCoreError> {
        let bytes: [UInt8]
        switch readFile() {
        case .success(let read): bytes = read
        case .failure(let error): return .failure(error)
        }
        guard let file = try? JSONDecoder().decode(File.self, from: Data(bytes)) else {
            return .failure(IoTCoreError(code: .tokenStore, message: "the token cache file does not decode"))
        }
        guard file.version == Self.fileVersion else {
            return .failure(IoTCoreError(code: .tokenStore, message: "the token cache file has an older format"))
        }
        guard file.credentials == fingerprint else {
            return .failure(
                IoTCoreError(
                    code: .tokenStore,
                    message: "the cached token was obtained with other credentials (device_secret changed?)"))
        }
        guard file.endpoint == endpoint else {
            return .failure(IoTCoreError(code: .tokenStore, message: "the cached token is for another endpoint"))
        }
        guard ServerAnswer(token: file.token).usableToken != nil, file.expiresAt.isFinite, file.obtainedAt.isFinite
        else {
            return .failure(IoTCoreError(code: .tokenStore, message: "the token cache file holds no usable token"))
        }
        let info = TokenInfo(
            expiresAt: Date(timeIntervalSince1970: file.expiresAt),
            issuedAt: file.issuedAt.flatMap { $0.isFinite ? Date(timeIntervalSince1970: $0) : nil },
            obtainedAt: Date(timeIntervalSince1970: file.obtainedAt),
            expirySource: TokenInfo.ExpirySource(rawValue: file.expirySource) ?? .assumed
        )
        return .success(AuthToken(value: Secret(file.token), info: info))
    }

    /// Replaces the cache file with `token`. Blocking: call it off the cooperative pool.
    func save(_ token: AuthToken, endpoint: String) throws(IoTCoreError) {
        let file = File(
            version: Self.fileVersion, endpoint: endpoint, token: token.value.exposedValue,
            expiresAt: token.info.expiresAt.timeIntervalSince1970,
            obtainedAt: token.info.obtainedAt.timeIntervalSince1970,
            issuedAt: token.info.issuedAt?.timeIntervalSince1970,
            expirySource: token.info.expirySource.rawValue,
            credentials: fingerprint
        )
        let bytes: [UInt8]
        do {
            bytes = Array(try JSONEncoder().encode(file))
        } catch {
            throw IoTCoreError(code: .tokenStore, message: "the token does not encode")
        }
        do {
            try fileSystem.makeDirectories(directory, mode: 0o700)
            try AtomicFile.write(path, bytes, mode: 0o600, fileSystem: fileSystem)
        } catch {
            throw Self.failure(error)
        }
    }

    /// The permission bits of the cache file, `nil` when it does not exist; for diagnostics and tests.
    func fileMode() -> UInt32? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt32(info.st_mode) & 0o7777
    }

    /// Deletes the cache file, when the server refused the cached token for good.
    func remove() {
        _ = fileSystem.unlink(path)
    }

    private func readFile() -> Result<[UInt8], IoTCoreError> {
        do {
            return .success(try AtomicFile.read(path, limit: Self.maxFileSize, fileSystem: fileSystem))
        } catch where error.code == ENOENT {
            return .failure(IoTCoreError(code: .tokenStore, message: "no token cache file"))
        } catch where error.code == EFBIG {
            return .failure(IoTCoreError(code: .tokenStore, message: "the token cache file is too large"))
        } catch {
            return .failure(Self.failure(error))
        }
    }

    private static func failure(_ error: FileSystemFailure) -> IoTCoreError {
        IoTCoreError(code: .tokenStore, message: error.description)
    }
}
