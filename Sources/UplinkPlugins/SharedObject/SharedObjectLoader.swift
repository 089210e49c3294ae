internal import CUplinkPlugin
import Synchronization
import UplinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// Why a shared-object plugin could not be loaded; the message names the file.
public struct SharedObjectError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        case cannotOpen
        case missingSymbol
        case abiMismatch
        case initFailed
        case invalidDescriptor
        case duplicateType
    }

    public var code: Code
    public var path: String
    public var message: String

    public init(_ code: Code, path: String, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { "plugin \(path): \(message)" }
}

/// Loads shared-object plugins (the C ABI of include/uplink_plugin.h) and turns each into a
/// ``PluginDescriptor``, so they are listed, validated and built exactly like the built-ins.
public enum SharedObjectPlugins {
    /// The ABI version this host speaks.
    public static let abiVersion = UInt32(UPLINK_PLUGIN_ABI_VERSION)

    /// Libraries already opened, by path: loading a path twice (two configs, or tests) registers it once.
    private static let loaded = Mutex<[String: PluginDescriptor]>([:])

    /// Loads every `plugins:` entry of a configuration into `registry`. A failure is a located error at the
    /// entry (`file:line:column`), reported with the configuration's other errors.
    public static func register(
        _ references: [PluginReference], into registry: inout PluginRegistry, diagnostics: DiagnosticCollector
    ) {
        var seen = Set<String>()
        for reference in references {
            do throws(SharedObjectError) {
                let descriptor = try load(path: reference.path)
                if !seen.insert(descriptor.origin).inserted { continue }
                if let existing = registry.descriptor(role: descriptor.role, type: descriptor.type),
                    existing.origin != descriptor.origin
                {
                    throw SharedObjectError(
                        .duplicateType, path: reference.path,
                        "it defines \(descriptor.role.rawValue) '\(descriptor.type)', which is already defined (\(existing.origin))"
                    )
                }
                registry.register(descriptor)
            } catch {
                diagnostics.error(error.description, file: reference.file, at: reference.mark)
            }
        }
    }

    /// Opens a plugin library, checks its ABI version and descriptor, and describes it.
    public static func load(path: String) throws(SharedObjectError) -> PluginDescriptor {
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard realpath(path, &resolved) != nil else {
            throw SharedObjectError(.cannotOpen, path: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        let canonical = cText(resolved)
        if let descriptor = loaded.withLock({ $0[canonical] }) { return descriptor }

        // RTLD_NOW: a missing dependency is an error now, at start-up, not a crash on first use. RTLD_LOCAL: two
        // plugins may define the same helper symbols. Never dlclose'd: descriptors and instances point into it.
        guard let handle = dlopen(canonical, RTLD_NOW | RTLD_LOCAL) else {
            throw SharedObjectError(.cannotOpen, path: path, "cannot load: \(lastDynamicLinkerError())")
        }
        guard let symbol = dlsym(handle, UPLINK_PLUGIN_ENTRY_POINT) else {
            throw SharedObjectError(
                .missingSymbol, path: path,
                "missing symbol '\(UPLINK_PLUGIN_ENTRY_POINT)': a plugin exports it with C linkage (see include/uplink_plugin.h; check with nm -D)"
            )
        }
        typealias Register = @convention(c) (UInt32, UnsafeMutablePointer<CChar>?, Int) -> UnsafePointer<uplink_plugin>?
        let register = unsafeBitCast(symbol, to: Register.self)
        var error = [CChar](repeating: 0, count: 512)
        guard let plugin = register(abiVersion, &error, error.count) else {
            let reason = cText(error)
            throw SharedObjectError(
                .initFailed, path: path,
                "\(UPLINK_PLUGIN_ENTRY_POINT) failed" + (reason.isEmpty ? " (returned NULL)" : ": \(reason)"))
        }
        // The version is the first field in every version of the ABI: read it before anything else.
        let version = UnsafeRawPointer(plugin).load(as: UInt32.self)
        guard version == abiVersion else {
            throw SharedObjectError(
                .abiMismatch, path: path,
                "built for plugin ABI version \(version), but this uplink speaks version \(abiVersion); rebuild it against this uplink's include/uplink_plugin.h"
            )
        }
        let library = try LoadedLibrary(path: canonical, plugin: plugin)
        let descriptor = library.descriptor
        loaded.withLock { $0[canonical] = descriptor }
        return descriptor
    }

    private static func lastDynamicLinkerError() -> String {
        guard let message = dlerror() else { return "unknown error" }
        return String(cString: message)
    }
}

/// A loaded plugin library: its descriptor, read once and checked. The descriptor is static data inside the
/// library, which is never unloaded, so keeping its pointer is safe.
final class LoadedLibrary: @unchecked Sendable {
    // @unchecked: `plugin` points to immutable static data of a library that is never unloaded.
    let path: String
    let plugin: UnsafePointer<uplink_plugin>
    let type: String
    let role: ComponentRole
    let accepts: Set<EventKind>
    let output: EventKind?
    let options: [OptionSpec]
    /// The declared C type of each option, for turning YAML values into what `create` receives.
    let optionTypes: [String: UInt32]

    init(path: String, plugin: UnsafePointer<uplink_plugin>) throws(SharedObjectError) {
        self.path = path
        self.plugin = plugin
        let descriptor = plugin.pointee
        func invalid(_ message: String) -> SharedObjectError {
            SharedObjectError(.invalidDescriptor, path: path, message)
        }
        guard let typePointer = descriptor.type else { throw invalid("its descriptor has no type name") }
        type = String(cString: typePointer)
        guard !type.isEmpty,
            type.utf8.allSatisfy({
                $0 == UInt8(ascii: "_") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A)
            })
        else {
            throw invalid("its type name '\(type)' must be letters, digits and '_'")
        }
        switch descriptor.role {
        case UInt32(UPLINK_ROLE_SOURCE): role = .source
        case UInt32(UPLINK_ROLE_TRANSFORM): role = .transform
        case UInt32(UPLINK_ROLE_SINK): role = .sink
        default: throw invalid("'\(type)' has an unknown role \(descriptor.role)")
        }
        var accepted = Set<EventKind>()
        for kind in EventKind.allCases where descriptor.accepts & (1 << Self.code(of: kind)) != 0 {
            accepted.insert(kind)
        }
        accepts = role == .source ? [] : accepted
        output = Self.kind(descriptor.output)
        if role != .source && accepts.isEmpty { throw invalid("\(role.rawValue) '\(type)' accepts no event kind") }
        if role != .sink && output == nil { throw invalid("\(role.rawValue) '\(type)' declares no valid output kind") }
        if descriptor.create == nil || descriptor.destroy == nil {
            throw invalid("'\(type)' must have 'create' and 'destroy' callbacks")
        }
        if role == .source && descriptor.poll == nil { throw invalid("source '\(type)' has no 'poll' callback") }
        if role != .source && descriptor.process == nil {
            throw invalid("\(role.rawValue) '\(type)' has no 'process' callback")
        }
        var options: [OptionSpec] = []
        var types: [String: UInt32] = [:]
        for index in 0..<descriptor.option_count {
            guard let table = descriptor.options else { throw invalid("'\(type)' declares options but no table") }
            let option = table[index]
            guard let namePointer = option.name else { throw invalid("option \(index) of '\(type)' has no name") }
            let name = String(cString: namePointer)
            let valueType: OptionSpec.ValueType
            switch option.type {
            case UInt32(UPLINK_OPTION_STRING): valueType = .string
            case UInt32(UPLINK_OPTION_INT): valueType = .int
            case UInt32(UPLINK_OPTION_FLOAT): valueType = .float
            case UInt32(UPLINK_OPTION_BOOL): valueType = .bool
            case UInt32(UPLINK_OPTION_DURATION): valueType = .duration
            case UInt32(UPLINK_OPTION_SIZE): valueType = .size
            case UInt32(UPLINK_OPTION_JSON): valueType = .any
            default: throw invalid("option '\(name)' of '\(type)' has an unknown type \(option.type)")
            }
            types[name] = option.type
            options.append(
                OptionSpec(
                    name, valueType, default: option.default_value.map { String(cString: $0) },
                    required: option.required != 0, option.description.map { String(cString: $0) } ?? ""))
        }
        self.options = options
        optionTypes = types
    }

    static func code(of kind: EventKind) -> UInt32 {
        switch kind {
        case .raw: return UInt32(UPLINK_KIND_RAW)
        case .record: return UInt32(UPLINK_KIND_RECORD)
        case .message: return UInt32(UPLINK_KIND_MESSAGE)
        }
    }

    static func kind(_ code: UInt32) -> EventKind? {
        switch code {
        case UInt32(UPLINK_KIND_RAW): return .raw
        case UInt32(UPLINK_KIND_RECORD): return .record
        case UInt32(UPLINK_KIND_MESSAGE): return .message
        default: return nil
        }
    }

    var summary: String { plugin.pointee.summary.map { String(cString: $0) } ?? "" }

    /// The registry entry: options checked by the engine, stages built from the component's config.
    var descriptor: PluginDescriptor {
        let library = self
        let output: PluginDescriptor.Output = self.output.map { .kind($0) } ?? .none
        return PluginDescriptor(
            type: type, role: role, summary: summary, options: options, accepts: accepts, output: output,
            origin: "shared object \(path)"
        ) { context in
            let entries = library.configEntries(context.config)
            let input: any Event.Type = (context.inputKind ?? .record).eventType
            let produced: any Event.Type = (library.output ?? .record).eventType
            switch library.role {
            case .source:
                func source<O: Event>(_: O.Type) -> BuiltStage {
                    .source(SharedObjectSource<O>(library: library, config: entries))
                }
                return source(produced)
            case .transform:
                func transform<I: Event, O: Event>(_: I.Type, _: O.Type) -> BuiltStage {
                    .transform(SharedObjectTransform<I, O>(library: library, config: entries))
                }
                func withInput<I: Event>(_ inputType: I.Type) -> BuiltStage { transform(inputType, produced) }
                return withInput(input)
            case .sink:
                func sink<I: Event>(_: I.Type) -> BuiltStage {
                    .sink(SharedObjectSink<I>(library: library, config: entries))
                }
                return sink(input)
            }
        }
    }

    /// Every declared option that is set or has a default, as the text `create` receives: typed values are
    /// read (and so checked) by the engine's reader, then written back in a normal form.
    func configEntries(_ config: ConfigReader) -> [(String, String)] {
        var entries: [(String, String)] = []
        for option in options {
            let value: String?
            switch optionTypes[option.name] {
            case UInt32(UPLINK_OPTION_INT): value = config.int(option.name).map(String.init)
            case UInt32(UPLINK_OPTION_FLOAT): value = config.double(option.name).map { "\($0)" }
            case UInt32(UPLINK_OPTION_BOOL): value = config.bool(option.name).map { $0 ? "true" : "false" }
            case UInt32(UPLINK_OPTION_DURATION):
                value = config.duration(option.name).map { duration in
                    let (seconds, attoseconds) = duration.components
                    return String(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
                }
            case UInt32(UPLINK_OPTION_SIZE): value = config.size(option.name).map(String.init)
            case UInt32(UPLINK_OPTION_JSON): value = config.value(option.name).map { YAMLValue.convert($0).jsonText }
            default: value = config.string(option.name)
            }
            if let value {
                entries.append((option.name, value))
            } else if !config.contains(option.name), let fallback = normalisedDefault(option) {
                entries.append((option.name, fallback))
            }
        }
        return entries
    }

    /// A default as written in the descriptor, in the same form as a set value.
    private func normalisedDefault(_ option: OptionSpec) -> String? {
        guard let text = option.defaultValue else { return nil }
        switch optionTypes[option.name] {
        case UInt32(UPLINK_OPTION_DURATION):
            guard let duration = ValueParsing.duration(text) else { return text }
            let (seconds, attoseconds) = duration.components
            return String(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        case UInt32(UPLINK_OPTION_SIZE): return ValueParsing.size(text).map(String.init) ?? text
        default: return text
        }
    }
}

/// The text of a NUL-terminated C buffer the plugin or libc filled.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
