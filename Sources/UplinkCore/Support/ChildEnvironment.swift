#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The environment the agent gives the commands it starts (`exec` sources, process plugins): its own, minus
/// the variables its configuration reads secrets from (``SecretVariables``), unless a component's
/// `pass_secrets: true` says otherwise. A command that needs a secret gets it through its own `env:` option,
/// explicitly.
public enum ChildEnvironment {
    /// This process's environment as `(name, value)` pairs in order, without the secrets' variables unless
    /// `passSecrets`.
    public static func inherited(passSecrets: Bool) -> [(String, String)] {
        let secrets = passSecrets ? [] : SecretVariables.names
        var result: [(String, String)] = []
        var seen: Set<String> = []
        var pointer = environ
        while let entry = pointer.pointee {
            pointer += 1
            let text = String(cString: entry)
            guard let equals = text.firstIndex(of: "=") else { continue }
            let name = String(text[..<equals])
            guard !secrets.contains(name), seen.insert(name).inserted else { continue }
            result.append((name, String(text[text.index(after: equals)...])))
        }
        return result
    }

    /// `base` with `overrides` applied (a name in both takes the override's value, in the override's place), as
    /// `KEY=value` strings for `posix_spawn`.
    public static func entries(_ base: [(String, String)], overrides: [(String, String)]) -> [String] {
        let overridden = Set(overrides.map(\.0))
        return (base.filter { !overridden.contains($0.0) } + overrides).map { "\($0.0)=\($0.1)" }
    }
}
