import UplinkYAML

/// A validated pipeline: every component built, every edge type-checked, in topological order.
public struct Topology: Sendable {
    public struct Node: Sendable {
        public var id: String
        public var role: ComponentRole
        public var type: String
        public var file: String
        public var mark: YAMLMark
        public var inputs: [String]
        public var buffer: BufferConfig
        public var stage: BuiltStage
        public var inputKind: EventKind?
        public var outputKind: EventKind?
        /// What the component was built from, in canonical form, without its `inputs:` (rewiring a running
        /// component does not need a new one) and without locations: equal fingerprints, same component.
        public var fingerprint: String = ""
        /// What it reads, as written: `id`, or `id.output` for a named output.
        public var inputReferences: [InputReference] = []
        /// Its named outputs (a `route`'s routes and `_unmatched`); empty for a component with a default output.
        public var outputNames: [String] = []
    }

    /// Sources first; every component after all of its inputs.
    public var nodes: [Node]
    public var global: GlobalConfig
    /// Warnings found while validating (for example unused sources).
    public var warnings: [ConfigDiagnostic]
    /// The pipeline's global settings and loaded plugins in canonical form: a reload that changes them restarts
    /// the whole pipeline.
    public var globalFingerprint: String = ""

    public func node(_ id: String) -> Node? { nodes.first { $0.id == id } }

    /// The ids of the components reading the default output of `id`, or its named output `output`.
    public func consumers(of id: String, output: String? = nil) -> [String] {
        nodes.filter { node in
            node.inputReferences.contains { $0.id == id && $0.output == output }
        }.map(\.id)
    }
}

/// Builds and validates a ``Topology`` from a ``PipelineConfig``: unknown types, dangling inputs, cycles,
/// type mismatches on edges and every plugin's own option errors, all collected in one pass.
public struct TopologyBuilder {
    public var registry: PluginRegistry
    /// Whether the paths `run` opens at start (`data_dir`, a file sink's path) are checked on this machine;
    /// off for `uplink test` (transforms only, their state in a temporary directory), `graph` and `plugins`.
    public var checksPaths: Bool

    public init(registry: PluginRegistry, checksPaths: Bool = true) {
        self.registry = registry
        self.checksPaths = checksPaths
    }

    /// `run` creates `<data_dir>/<id>` for a component that keeps state (and a disk buffer) and stops when it
    /// cannot: refuse such a `data_dir` here, where it is written (or at the component, for the default), so
    /// `validate` says it first. It looks at this machine, as `run` will; nothing is created.
    func checkDataDirectory(_ config: PipelineConfig, descriptors: [String: PluginDescriptor], diagnostics: DiagnosticCollector) {
        guard checksPaths,
            let user = config.components.first(where: { descriptors[$0.id]?.keepsState == true || $0.buffer.kind == .disk }),
            let problem = FileIO.directoryCreationProblem(config.global.dataDirectory)
        else { return }
        let why = user.buffer.kind == .disk && descriptors[user.id]?.keepsState != true
            ? "the disk buffer of \(user.role.rawValue) '\(user.id)' lives there"
            : "\(user.role.rawValue) '\(user.id)' keeps its state there"
        if let written = config.global.dataDirectoryLocation {
            diagnostics.error("'data_dir' cannot be used: \(problem) (\(why))", file: written.file, at: written.mark)
        } else {
            diagnostics.error(
                "'data_dir' (default \(config.global.dataDirectory)) cannot be used: \(problem) (\(why)); set data_dir to a directory this user may write",
                file: user.file, at: user.mark)
        }
    }

    public func build(_ config: PipelineConfig, diagnostics: DiagnosticCollector) -> Topology? {
        let byID = Dictionary(config.components.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })

        // A file that could not be read or parsed holds unknown components: checks on the whole pipeline would
        // only add follow-on errors to the one that matters (a bogus "no components" after a syntax error).
        let complete = config.unreadableFiles.isEmpty
        if complete && config.components.isEmpty {
            diagnostics.error(
                "the configuration has no components: add sources and sinks", file: config.files.first ?? "<config>",
                at: YAMLMark(line: 1, column: 1))
        } else if complete {
            if !config.components.contains(where: { $0.role == .source }) {
                diagnostics.error("the configuration has no sources", file: config.components[0].file, at: config.components[0].mark)
            }
            if !config.components.contains(where: { $0.role == .sink }) {
                diagnostics.error("the configuration has no sinks", file: config.components[0].file, at: config.components[0].mark)
            }
        }

        // Unknown types.
        var descriptors: [String: PluginDescriptor] = [:]
        for component in config.components {
            if let descriptor = registry.descriptor(role: component.role, type: component.type) {
                descriptors[component.id] = descriptor
                continue
            }
            var message = "unknown \(component.role.rawValue) type '\(component.type)'"
            let known = registry.types(for: component.role)
            if let hint = ValueParsing.suggestion(for: component.type, among: known) {
                message += "; did you mean '\(hint)'?"
            } else if let otherRole = ComponentRole.allCases.first(where: { registry.descriptor(role: $0, type: component.type) != nil }) {
                message += "; '\(component.type)' is a \(otherRole.rawValue): move it under '\(otherRole.section)'"
            } else {
                message += " (\(component.role.section): \(known.joined(separator: ", ")))"
            }
            diagnostics.error(message, file: component.file, at: component.typeMark)
        }

        checkDataDirectory(config, descriptors: descriptors, diagnostics: diagnostics)

        // Dangling inputs and inputs that are sinks.
        for component in config.components {
            var seen = Set<String>()
            for input in component.inputs {
                if !seen.insert(input.reference).inserted {
                    diagnostics.error("input '\(input.reference)' is listed twice", file: component.file, at: input.mark)
                }
                guard let upstream = byID[input.id] else {
                    // It may be one of the unparsed file's components.
                    guard complete else { continue }
                    var message = "input '\(input.id)' of \(component.role.rawValue) '\(component.id)' does not exist"
                    let candidates = config.components.filter { $0.role != .sink }.map(\.id)
                    if let hint = ValueParsing.suggestion(for: input.id, among: candidates) { message += "; did you mean '\(hint)'?" }
                    diagnostics.error(message, file: component.file, at: input.mark)
                    continue
                }
                if upstream.role == .sink {
                    diagnostics.error("'\(input.id)' is a sink and produces no events to read", file: component.file, at: input.mark)
                }
                if input.id == component.id {
                    diagnostics.error("component '\(component.id)' lists itself as an input", file: component.file, at: input.mark)
                }
            }
        }

        // Unused sources and transforms.
        for component in config.components where component.role != .sink && complete {
            if !config.components.contains(where: { $0.inputs.contains(where: { $0.id == component.id }) }) {
                diagnostics.warning(
                    "\(component.role.rawValue) '\(component.id)' is not an input of any component: its events go nowhere",
                    file: component.file, at: component.mark)
            }
        }

        // Topological order (Kahn); whatever is left over sits on a cycle.
        let order = topologicalOrder(config.components, byID: byID, diagnostics: diagnostics)

        // Build in order, inferring each component's input kind from its inputs' outputs.
        // What each sink shared, and the merged view each transform read (see ``SharedSettings``).
        var sharedBySink: [String: SharedSettings] = [:]
        var sharedViews: [String: SharedSettings] = [:]
        var built: [String: Topology.Node] = [:]
        var nodes: [Topology.Node] = []
        // Sinks first publish shared settings (credentials) that transforms may use: build sinks' options early.
        let buildOrder = order.filter { $0.role == .sink } + order.filter { $0.role != .sink }
        var unbuildable = Set<String>()
        for component in buildOrder {
            guard let descriptor = descriptors[component.id] else {
                unbuildable.insert(component.id)
                continue
            }
            var inputKind: EventKind?
            if component.role != .source {
                var kinds: [(String, EventKind)] = []
                var unknownInput = false
                for input in component.inputs {
                    if let upstream = built[input.id], let kind = upstream.outputKind {
                        kinds.append((input.id, kind))
                    } else if component.role == .sink, let upstream = byID[input.id], upstream.role != .sink {
                        // Sinks are built before transforms so they can share settings: infer from the descriptor.
                        if let kind = staticOutputKind(of: upstream, byID: byID, descriptors: descriptors) {
                            kinds.append((input.id, kind))
                        } else {
                            unknownInput = true
                        }
                    } else {
                        unknownInput = true
                    }
                }
                if unknownInput && kinds.isEmpty {
                    unbuildable.insert(component.id)
                    // Still read the options so their errors are reported.
                }
                if let first = kinds.first, let mismatch = kinds.first(where: { $0.1 != first.1 }) {
                    diagnostics.error(
                        "inputs of '\(component.id)' produce different kinds of events: '\(first.0)' gives \(first.1), '\(mismatch.0)' gives \(mismatch.1)",
                        file: component.file, at: component.mark)
                    unbuildable.insert(component.id)
                }
                inputKind = kinds.first?.1
                if let kind = inputKind, !descriptor.accepts.contains(kind) {
                    let producer = kinds.first(where: { $0.1 == kind })!.0
                    let producerConfig = byID[producer]!
                    let accepted = descriptor.accepts.map(\.rawValue).sorted().joined(separator: " or ")
                    diagnostics.error(
                        "type mismatch: '\(producer)' (\(producerConfig.type), \(producerConfig.file):\(producerConfig.mark.line):\(producerConfig.mark.column)) produces \(kind), but '\(component.id)' (\(component.type)) accepts \(accepted)",
                        file: component.file, at: component.mark)
                    unbuildable.insert(component.id)
                    inputKind = nil
                }
            }
            let reader = ConfigReader(
                node: component.node, file: component.file, options: descriptor.options, diagnostics: diagnostics,
                engineKeys: component.role == .source ? ["type"] : ["type", "inputs", "buffer"])
            let shared: SharedSettings
            if component.role == .sink {
                shared = SharedSettings()
                sharedBySink[component.id] = shared
            } else {
                let sinks = downstreamSinks(of: component.id, in: config.components)
                shared = SharedSettings.merged(
                    sinks.compactMap { sink in
                        sharedBySink[sink.id].map { (id: sink.id, file: sink.file, mark: sink.mark, settings: $0) }
                    })
            }
            sharedViews[component.id] = shared
            let context = PluginBuildContext(
                id: component.id, config: reader, inputKind: inputKind ?? descriptor.accepts.sorted(by: { $0.rawValue < $1.rawValue }).first,
                dataDirectory: config.global.dataDirectory, shared: shared, checksPaths: checksPaths)
            let before = diagnostics.diagnostics.count
            let stage: BuiltStage?
            var buildError: (any Error)?
            do {
                stage = try descriptor.build(context)
            } catch {
                buildError = error
                stage = nil
            }
            reader.finish()
            if let buildError {
                // A factory that already reported its problems where they are written (or left them to the
                // required-option check) throws an empty error.
                let alreadyReported = (buildError as? PluginBuildError)?.message.isEmpty == true
                    && diagnostics.diagnostics[before...].contains { $0.severity == .error }
                if !alreadyReported {
                    diagnostics.error("\(component.role.rawValue) '\(component.id)' (\(component.type)): \(buildError)", file: component.file, at: component.mark)
                }
            }
            let hadErrors = diagnostics.diagnostics[before...].contains { $0.severity == .error }
            guard let stage, !hadErrors, !unbuildable.contains(component.id) else {
                unbuildable.insert(component.id)
                continue
            }
            let node = Topology.Node(
                id: component.id, role: component.role, type: component.type, file: component.file,
                mark: component.mark, inputs: component.inputs.map(\.id), buffer: component.buffer, stage: stage,
                inputKind: stage.inputKind, outputKind: stage.outputKind, inputReferences: component.inputs,
                outputNames: stage.outputNames ?? [])
            built[component.id] = node
        }
        // Transforms may have read what their sinks shared (credentials), so a change there is a change of theirs.
        for (id, var node) in built {
            let options = Fingerprint.canonical(byID[id]!.node, skippingKeys: ["inputs"])
            let sharedValues = sharedViews[id]?.canonical ?? ""
            node.fingerprint = node.role == .sink ? options : options + "\u{1}" + sharedValues
            built[id] = node
        }
        for component in order { if let node = built[component.id] { nodes.append(node) } }

        // Sinks were built from their inputs' declared kinds; a producer whose built stage disagrees (a
        // descriptor that misdeclares its output) must be an error here, not a failed cast at run time.
        for node in nodes {
            for input in node.inputs {
                guard let upstream = built[input], let produced = upstream.outputKind, let expected = node.inputKind,
                    produced != expected, let component = byID[node.id]
                else { continue }
                diagnostics.error(
                    "type mismatch: '\(input)' (\(upstream.type)) produces \(produced), but '\(node.id)' was built for \(expected)",
                    file: component.file, at: component.mark)
            }
        }

        checkOutputNames(nodes, byID: byID, diagnostics: diagnostics)

        if diagnostics.hasErrors { return nil }
        let global = config.global
        // `api` and `summary_interval` belong to the process, not the pipeline: they are not part of it.
        let globalFingerprint = [global.dataDirectory, "\(global.shutdownTimeout)"] + config.plugins.map(\.path)
        return Topology(
            nodes: nodes, global: config.global,
            warnings: diagnostics.diagnostics.filter { $0.severity == .warning },
            globalFingerprint: globalFingerprint.joined(separator: "\u{1}"))
    }

    /// The sinks `id`'s events reach, through any number of transforms, in configuration order.
    private func downstreamSinks(of id: String, in components: [ComponentConfig]) -> [ComponentConfig] {
        var reached: Set<String> = [id]
        var frontier = [id]
        // Bounded: each component enters the frontier once, so a cycle (reported elsewhere) ends too.
        while let current = frontier.popLast() {
            for consumer in components where consumer.inputs.contains(where: { $0.id == current }) {
                if reached.insert(consumer.id).inserted { frontier.append(consumer.id) }
            }
        }
        return components.filter { $0.role == .sink && reached.contains($0.id) }
    }

    /// Every `id.output` input names an output the component has, and a component with named outputs is read
    /// through them; a named output nobody reads is worth a warning (its events are counted and dropped).
    private func checkOutputNames(
        _ nodes: [Topology.Node], byID: [String: ComponentConfig], diagnostics: DiagnosticCollector
    ) {
        let built = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for node in nodes {
            guard let component = byID[node.id] else { continue }
            for input in component.inputs {
                guard let upstream = built[input.id] else { continue }
                switch (input.output, upstream.outputNames.isEmpty) {
                case (nil, true):
                    continue
                case (nil, false):
                    let listed = upstream.outputNames.map { "\(input.id).\($0)" }.joined(separator: ", ")
                    diagnostics.error(
                        "'\(input.id)' (\(upstream.type)) sends its events through named outputs: read one of \(listed)",
                        file: component.file, at: input.mark)
                case (.some, true):
                    diagnostics.error(
                        "'\(input.id)' (\(upstream.type)) has no named outputs: read it as '\(input.id)', not '\(input.reference)'",
                        file: component.file, at: input.mark)
                case (let output?, false):
                    guard !upstream.outputNames.contains(output) else { continue }
                    var message = "'\(input.id)' has no output '\(output)'"
                    if let hint = ValueParsing.suggestion(for: output, among: upstream.outputNames) {
                        message += "; did you mean '\(input.id).\(hint)'?"
                    } else {
                        message += " (its outputs: \(upstream.outputNames.joined(separator: ", ")))"
                    }
                    diagnostics.error(message, file: component.file, at: input.mark)
                }
            }
        }
        for node in nodes where !node.outputNames.isEmpty {
            let read = Set(nodes.flatMap { $0.inputReferences.filter { $0.id == node.id }.compactMap(\.output) })
            for output in node.outputNames where !read.contains(output) && !output.hasPrefix("_") {
                diagnostics.warning(
                    "output '\(node.id).\(output)' is not an input of any component: its events are counted and dropped",
                    file: node.file, at: node.mark)
            }
        }
    }

    /// A component's output kind known from its descriptor alone (used before it is built).
    private func staticOutputKind(
        of component: ComponentConfig, byID: [String: ComponentConfig], descriptors: [String: PluginDescriptor],
        depth: Int = 0
    ) -> EventKind? {
        guard depth < 64, let descriptor = descriptors[component.id] else { return nil }
        switch descriptor.output {
        case .none: return nil
        case .kind(let kind): return kind
        case .sameAsInput:
            guard let first = component.inputs.first, let upstream = byID[first.id] else { return nil }
            return staticOutputKind(of: upstream, byID: byID, descriptors: descriptors, depth: depth + 1)
        case .fromOption(let name, let fallback):
            guard let text = component.node[name]?.scalar else { return fallback }
            return EventKind(rawValue: text) ?? fallback
        }
    }

    private func topologicalOrder(
        _ components: [ComponentConfig], byID: [String: ComponentConfig], diagnostics: DiagnosticCollector
    ) -> [ComponentConfig] {
        var remainingInputs: [String: Int] = [:]
        for component in components {
            remainingInputs[component.id] = Set(component.inputs.map(\.id).filter { byID[$0] != nil && $0 != component.id }).count
        }
        var ready = components.filter { remainingInputs[$0.id] == 0 }
        var order: [ComponentConfig] = []
        var placed = Set<String>()
        while !ready.isEmpty {
            let next = ready.removeFirst()
            guard placed.insert(next.id).inserted else { continue }
            order.append(next)
            for consumer in components where consumer.inputs.contains(where: { $0.id == next.id }) && consumer.id != next.id {
                remainingInputs[consumer.id, default: 0] -= 1
                if remainingInputs[consumer.id] == 0 { ready.append(consumer) }
            }
        }
        // Left over: the components on a cycle, and those downstream of one (never ready, but not part of it).
        let leftover = components.filter { !placed.contains($0.id) }
        for cycle in cycles(among: leftover, byID: byID) {
            let path = describeCycle(cycle, byID: byID)
            for component in cycle {
                diagnostics.error("'\(component.id)' is part of a cycle: \(path)", file: component.file, at: component.mark)
            }
        }
        return order
    }

    /// The cycles among `components`: their strongly connected components of more than one member (Tarjan),
    /// in configuration order. A component that only reads from a cycle is in none of them.
    private func cycles(among components: [ComponentConfig], byID: [String: ComponentConfig]) -> [[ComponentConfig]] {
        let members = Set(components.map(\.id))
        var index: [String: Int] = [:]
        var lowLink: [String: Int] = [:]
        var stack: [String] = []
        var onStack = Set<String>()
        var found: [[String]] = []
        var counter = 0
        func connect(_ id: String) {
            index[id] = counter
            lowLink[id] = counter
            counter += 1
            stack.append(id)
            onStack.insert(id)
            // Edges from a component to its inputs: a cycle is the same either way round.
            for input in byID[id]?.inputs ?? [] where members.contains(input.id) && input.id != id {
                if index[input.id] == nil {
                    connect(input.id)
                    lowLink[id] = min(lowLink[id]!, lowLink[input.id]!)
                } else if onStack.contains(input.id) {
                    lowLink[id] = min(lowLink[id]!, index[input.id]!)
                }
            }
            guard lowLink[id] == index[id] else { return }
            var component: [String] = []
            while let top = stack.popLast() {
                onStack.remove(top)
                component.append(top)
                if top == id { break }
            }
            if component.count > 1 { found.append(component) }
        }
        // Recursion depth is bounded by the number of components of one configuration.
        for component in components where index[component.id] == nil { connect(component.id) }
        return found.map { cycle in components.filter { cycle.contains($0.id) } }
    }

    private func describeCycle(_ cyclic: [ComponentConfig], byID: [String: ComponentConfig]) -> String {
        let members = Set(cyclic.map(\.id))
        var path: [String] = [cyclic[0].id]
        var current = cyclic[0]
        for _ in 0..<cyclic.count {
            guard let next = current.inputs.first(where: { members.contains($0.id) }), let nextComponent = byID[next.id] else { break }
            if let index = path.firstIndex(of: next.id) {
                path = Array(path[index...]) + [next.id]
                return path.reversed().joined(separator: " -> ")
            }
            path.append(next.id)
            current = nextComponent
        }
        return path.reversed().joined(separator: " -> ")
    }
}
