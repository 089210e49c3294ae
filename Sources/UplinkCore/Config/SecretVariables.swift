import Synchronization
public import UplinkYAML

/// The environment variables a configuration reads secrets from, so that commands the agent starts (`exec`
/// sources, process plugins) do not inherit them (see ``ChildEnvironment``).
///
/// A variable is a secret's when a `${NAME}` reference to it is in the value of a key named like a secret:
/// `secret`, `password`, `passwd`, `passphrase`, `token`, `credentials`, `api_key`, `private_key`, or ending
/// in `_` and one of these (`device_secret`, `auth_token`, `db_password`), anywhere in the file, a process
/// plugin's `config:` included. Key names and not option tables decide, because a process plugin's `config:`
/// has no table.
///
/// Recorded for the whole process, before interpolation, each time a configuration is loaded (a reload only
/// adds names): the environment the names refer to is the process's too.
public enum SecretVariables {
    static let secretWords: Set<String> = [
        "secret", "password", "passwd", "passphrase", "token", "credentials", "api_key", "apikey", "private_key",
    ]

    private static let recorded = Mutex<Set<String>>([])

    /// The names recorded so far.
    public static var names: Set<String> { recorded.withLock { $0 } }

    /// Records the secrets' variables of `root` (a configuration file's tree before interpolation).
    public static func record(from root: YAMLNode) {
        let found = referenced(in: root)
        if !found.isEmpty { recorded.withLock { $0.formUnion(found) } }
    }

    /// The variables referenced from the values of secret-named keys in `node`.
    public static func referenced(in node: YAMLNode) -> Set<String> {
        var names: Set<String> = []
        collect(node, underSecret: false, into: &names)
        return names
    }

    /// Whether a key names a secret.
    public static func isSecretKey(_ key: String) -> Bool {
        let key = key.lowercased()
        if secretWords.contains(key) { return true }
        return secretWords.contains { key.hasSuffix("_" + $0) }
    }

    private static func collect(_ node: YAMLNode, underSecret: Bool, into names: inout Set<String>) {
        switch node.kind {
        case .scalar(let value, _):
            if underSecret { names.formUnion(Interpolator.referencedVariables(in: value)) }
        case .sequence(let items):
            for item in items { collect(item, underSecret: underSecret, into: &names) }
        case .mapping(let pairs):
            for pair in pairs {
                let secret = underSecret || pair.key.scalar.map(isSecretKey) == true
                collect(pair.value, underSecret: secret, into: &names)
            }
        }
    }
}
