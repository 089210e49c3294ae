import UplinkYAML

/// Reads configuration files into a ``PipelineConfig``: YAML parsing, `${VAR}` interpolation, the top-level
/// shape, component ids, types and inputs. Plugin options are read later, when the topology builds plugins.
public struct ConfigLoader {
    public var environment: [String: String]
    /// `buffer.max_events` for components whose configuration sets none, by role and type (plugins declare them
    /// in ``PluginDescriptor/defaultBufferEvents``; ``PluginRegistry/defaultBufferEvents`` collects them).
    public var defaultBufferEvents: [ComponentRole: [String: Int]]

    public init(environment: [String: String], defaultBufferEvents: [ComponentRole: [String: Int]] = [:]) {
        self.environment = environment
        self.defaultBufferEvents = defaultBufferEvents
    }

    static let topLevelKeys = ["data_dir", "shutdown_timeout", "plugins", "sources", "transforms", "sinks"]

    /// Loads and merges several files (components from all of them; ids must be unique across files).
    public func load(paths: [String], diagnostics: DiagnosticCollector) -> PipelineConfig {
        var config = PipelineConfig(files: paths)
        for path in paths {
            let bytes: [UInt8]
            do {
                bytes = try FileIO.readFile(path, limit: 16 << 20)
            } catch {
                // No position: the file itself could not be read (`uplink: cannot read x.yaml: permission denied`).
                diagnostics.error("cannot read \(path): \(error.reason)", file: path, at: ConfigDiagnostic.wholeFile)
                config.unreadableFiles.append(path)
                continue
            }
            load(bytes: bytes, file: path, into: &config, diagnostics: diagnostics)
        }
        return config
    }

    /// Loads one document from memory (also used by tests and `uplink test`).
    public func load(bytes: [UInt8], file: String, into config: inout PipelineConfig, diagnostics: DiagnosticCollector) {
        var root: YAMLNode
        var problems: [YAMLError] = []
        do {
            root = try YAMLParser.parse(bytes, file: file, problems: &problems)
        } catch {
            diagnostics.error(error.message, file: file, at: error.mark)
            config.unreadableFiles.append(file)
            return
        }
        // Duplicate keys: all of them reported, and the rest of the file still checked.
        for problem in problems { diagnostics.error(problem.message, file: file, at: problem.mark) }
        // Before interpolation, while the `${NAME}` references are still there: commands the agent starts must
        // not inherit the variables secrets come from.
        SecretVariables.record(from: root)
        var interpolationErrors: [YAMLError] = []
        Interpolator(environment: environment).interpolate(&root, file: file, errors: &interpolationErrors)
        for error in interpolationErrors { diagnostics.error(error.message, file: file, at: error.mark) }
        var blanked = Set(interpolationErrors.map(\.mark))
        if !blanked.isEmpty { Self.blank(&blanked, in: &root) }

        guard let pairs = root.mapping else {
            diagnostics.error("the configuration must be a mapping with sources, transforms and sinks, not \(root.kindDescription)", file: file, at: root.mark)
            return
        }
        let reader = ConfigReader(
            node: root, file: file,
            options: [
                OptionSpec("data_dir", .string, default: "/var/lib/uplink", "state directory for checkpoints, tokens and buffers"),
                OptionSpec("shutdown_timeout", .duration, default: "30s", "how long a graceful shutdown may take"),
                OptionSpec(
                    "plugins", .stringList,
                    "shared-object plugins (.so) to load before the pipeline is built; relative to this file"),
                OptionSpec("sources", .any, "source components by id"),
                OptionSpec("transforms", .any, "transform components by id"),
                OptionSpec("sinks", .any, "sink components by id"),
            ] + OperationsConfig.options,
            diagnostics: diagnostics)
        reader.finish()
        // A misspelt section (`sorces:`) hides its components: the checks on the whole pipeline (no sources, an
        // input that does not exist) would only add follow-on errors to the "did you mean" just reported.
        let sections = ComponentRole.allCases.map(\.section)
        let known = Set(reader.options.map(\.name))
        let misspeltSection = pairs.contains { pair in
            guard let key = pair.key.scalar, !known.contains(key) else { return false }
            return ValueParsing.suggestion(for: key, among: sections) != nil
        }
        if misspeltSection { config.unreadableFiles.append(file) }
        if let directory = reader.string("data_dir") {
            config.global.dataDirectory = directory
            config.global.dataDirectoryLocation = reader.value("data_dir").map { (file, $0.mark) }
        }
        if let timeout = reader.duration("shutdown_timeout") { config.global.shutdownTimeout = timeout }
        config.plugins += loadPluginReferences(reader, file: file, diagnostics: diagnostics)
        OperationsConfig.read(reader, file: file, into: &config)

        for pair in pairs {
            guard let key = pair.key.scalar, let role = ComponentRole.allCases.first(where: { $0.section == key }) else {
                continue
            }
            if pair.value.isNull { continue }
            guard let components = pair.value.mapping else {
                diagnostics.error("'\(key)' must be a mapping of component ids to components, not \(pair.value.kindDescription)", file: file, at: pair.value.mark)
                continue
            }
            for component in components {
                if let parsed = loadComponent(component, role: role, file: file, blanked: blanked, diagnostics: diagnostics) {
                    if let existing = config.components.first(where: { $0.id == parsed.id }) {
                        diagnostics.error(
                            "component id '\(parsed.id)' is already used at \(existing.file):\(existing.mark.line):\(existing.mark.column)",
                            file: file, at: parsed.mark)
                        continue
                    }
                    config.components.append(parsed)
                }
            }
        }
    }

    /// Makes the values whose `${VAR}` could not be expanded absent, as if they were not written (a value, or
    /// the list holding it, becomes null): their error is already reported, and a plugin reading
    /// `${DEVICE_SN}` literally would add errors about a value nobody wrote (an unknown placeholder in a topic
    /// built from it). A null value still counts as written for required options, so no "missing" follows.
    /// A list made null adds its own mark to `marks`, so the loader knows its `inputs:` were written.
    static func blank(_ marks: inout Set<YAMLMark>, in node: inout YAMLNode) {
        switch node.kind {
        case .scalar:
            if marks.contains(node.mark) {
                node.kind = .scalar("", .plain)
                node.tag = nil
            }
        case .sequence(var items):
            // A list missing an item is not the list that was written (`include: ["${APP_LOG}"]` would then
            // be empty): the whole list is absent.
            if items.contains(where: { $0.scalar != nil && marks.contains($0.mark) }) {
                node.kind = .scalar("", .plain)
                node.tag = nil
                marks.insert(node.mark)
                return
            }
            for index in items.indices { blank(&marks, in: &items[index]) }
            node.kind = .sequence(items)
        case .mapping(var pairs):
            for index in pairs.indices { blank(&marks, in: &pairs[index].value) }
            node.kind = .mapping(pairs)
        }
    }

    /// `plugins: [path, ...]`, each kept with its location so a load failure points at its line. Relative paths
    /// are resolved against the directory of the file that lists them, so a pipeline works from any directory.
    private func loadPluginReferences(
        _ reader: ConfigReader, file: String, diagnostics: DiagnosticCollector
    ) -> [PluginReference] {
        guard let node = reader.value("plugins") else { return [] }
        guard let items = node.sequence else {
            diagnostics.error(
                "'plugins' must be a list of shared-object paths, for example plugins: [./libscale.so]", file: file,
                at: node.mark)
            return []
        }
        var references: [PluginReference] = []
        for item in items {
            guard let written = item.scalar, !item.isNull, !written.isEmpty else {
                diagnostics.error("items of 'plugins' must be paths to shared objects", file: file, at: item.mark)
                continue
            }
            let directory = FileIO.parentDirectory(of: file)
            let relative = written.hasPrefix("./") ? String(written.dropFirst(2)) : written
            let path = written.hasPrefix("/") || directory == "." ? written : directory + "/" + relative
            references.append(PluginReference(path: path, written: written, file: file, mark: item.mark))
        }
        return references
    }

    private func loadComponent(
        _ pair: YAMLPair, role: ComponentRole, file: String, blanked: Set<YAMLMark>, diagnostics: DiagnosticCollector
    ) -> ComponentConfig? {
        guard let id = pair.key.scalar, !id.isEmpty else {
            diagnostics.error("a component id must be a non-empty string", file: file, at: pair.key.mark)
            return nil
        }
        guard id.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) }) else {
            diagnostics.error("component id '\(id)' may only use letters, digits, '_' and '-'", file: file, at: pair.key.mark)
            return nil
        }
        let node = pair.value
        guard node.mapping != nil else {
            diagnostics.error("component '\(id)' must be a mapping with at least 'type', not \(node.kindDescription)", file: file, at: node.mark)
            return nil
        }
        guard let typeNode = node["type"], let type = typeNode.scalar, !typeNode.isNull else {
            // `type: ${KIND}` with KIND unset is already reported.
            if let typeNode = node["type"], blanked.contains(typeNode.mark) { return nil }
            diagnostics.error("component '\(id)' has no 'type'", file: file, at: pair.key.mark)
            return nil
        }
        var inputs: [InputReference] = []
        var buffer = BufferConfig()
        if let events = defaultBufferEvents[role]?[type] { buffer.maxEvents = events }
        if role == .source {
            if let inputsNode = node["inputs"] {
                diagnostics.error("source '\(id)' cannot have 'inputs': sources read from the outside world", file: file, at: inputsNode.mark)
            }
        } else {
            if let inputsNode = node["inputs"], !inputsNode.isNull {
                if let items = inputsNode.sequence {
                    for item in items {
                        guard let input = item.scalar else {
                            diagnostics.error("items of 'inputs' must be component ids", file: file, at: item.mark)
                            continue
                        }
                        inputs.append(InputReference(parsing: input, mark: item.mark))
                    }
                } else if let single = inputsNode.scalar {
                    diagnostics.error("'inputs' must be a list, for example inputs: [\(single)]", file: file, at: inputsNode.mark)
                } else {
                    diagnostics.error("'inputs' must be a list of component ids", file: file, at: inputsNode.mark)
                }
            }
            if let inputsNode = node["inputs"], blanked.contains(inputsNode.mark) {
                // `inputs: [${UPSTREAM}]` with UPSTREAM unset is already reported.
            } else if node["inputs"] == nil || node["inputs"]!.isNull {
                diagnostics.error("\(role.rawValue) '\(id)' needs 'inputs': the ids of the components it reads from", file: file, at: pair.key.mark)
            } else if inputs.isEmpty && node["inputs"]?.sequence != nil {
                diagnostics.error("\(role.rawValue) '\(id)' has an empty 'inputs' list", file: file, at: pair.key.mark)
            }
            if let bufferNode = node["buffer"], !bufferNode.isNull {
                let reader = ConfigReader(node: bufferNode, file: file, options: BufferConfig.options, diagnostics: diagnostics, prefix: "buffer.")
                if bufferNode.mapping == nil {
                    diagnostics.error("'buffer' must be a mapping", file: file, at: bufferNode.mark)
                } else {
                    reader.finish()
                    buffer.kind = reader.enumeration("type", default: buffer.kind)
                    buffer.maxEvents = reader.int("max_events", default: buffer.maxEvents, range: 1...100_000_000)
                    buffer.maxBytes = reader.size("max_size", default: buffer.maxBytes)
                    buffer.whenFull = reader.enumeration("when_full", default: buffer.whenFull)
                    buffer.fsyncInterval = reader.duration("fsync_interval", default: buffer.fsyncInterval)
                    if buffer.kind == .disk && role != .sink {
                        reader.error("a disk buffer belongs in front of a sink; transforms take type: memory", at: "type")
                    }
                    if buffer.kind == .memory {
                        if reader.contains("fsync_interval") {
                            reader.error("'buffer.fsync_interval' applies to type: disk", at: "fsync_interval")
                        }
                        if reader.contains("max_size") {
                            buffer.memoryMaxBytes = buffer.maxBytes
                            buffer.maxBytes = BufferConfig().maxBytes
                            if buffer.memoryMaxBytes! < 64 << 10 {
                                reader.error("'buffer.max_size' of a memory buffer must be at least 64KiB", at: "max_size")
                            }
                        }
                    } else if reader.contains("max_events") {
                        reader.error("'buffer.max_events' applies to type: memory; a disk buffer is sized with max_size", at: "max_events")
                    }
                    if buffer.kind == .disk && buffer.maxBytes < 1 << 20 {
                        reader.error("'buffer.max_size' must be at least 1MiB", at: "max_size")
                    }
                }
            }
        }
        return ComponentConfig(
            id: id, role: role, type: type, file: file, mark: pair.key.mark, typeMark: typeNode.mark,
            inputs: inputs, buffer: buffer, node: node)
    }
}
