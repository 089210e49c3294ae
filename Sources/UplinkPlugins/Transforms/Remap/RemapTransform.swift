import UplinkCore
import UplinkYAML

/// `remap`: changes records' fields with `set` (a field from an expression), `rename` and `remove`.
///
/// The operations run in the order they are written: the options in the order of the component's mapping, and
/// each option's entries in theirs, so `set: {f: '.t * 9 / 5 + 32'}` written before `remove: [t]` still sees `t`.
/// Field names are top-level names. An expression that cannot be evaluated for a record follows `on_error`
/// (`keep` leaves that one field unset and applies the other operations).
public struct RemapTransform: InlineTransform {
    public typealias Input = Record
    public typealias Output = Record

    public enum Operation: Sendable {
        case set(String, Expression)
        case rename(from: String, to: String)
        case remove(String)
    }

    public static let descriptor = PluginDescriptor(
        type: "remap", role: .transform,
        summary: "Sets fields from expressions, renames and removes fields, in the order written.",
        options: [
            OptionSpec("set", .map(key: "field name", value: "expression"), "field: expression (docs/expressions.md), e.g. { temp_f: '.temp * 9 / 5 + 32', site: '\"plant-4\"' }"),
            OptionSpec("rename", .map(key: "field name", value: "new field name"), "old_name: new_name; a missing field is left alone, an existing new_name is replaced"),
            OptionSpec("remove", .list(of: "field names"), "fields to remove"),
            ExpressionErrorPolicy.option(keep: "the field is left unset, the other operations apply"),
        ] + DeadLetterSettings.options,
        accepts: [.record], output: .kind(.record)
    ) { context in
        .transform(try RemapTransform(config: context.config))
    }

    public let operations: [Operation]
    public let onError: ExpressionErrorPolicy
    let deadLetters: DeadLetterSettings
    /// Per operation, what a plan's step reads by its index (``RemapPlans/Step``): the field a `set` writes (its
    /// UTF-8 length) and its expression, or the name a `rename` gives.
    let targets: [Target]

    struct Target {
        let name: String
        let nameBytes: Int
        let expression: Expression?
        /// A `set` of a literal (`site: '"plant-4"'`): its value, taken as it is instead of evaluated per record.
        let constant: Value?

        init(_ operation: Operation) {
            switch operation {
            case .set(let field, let value): (name, expression) = (field, value)
            case .rename(_, let to): (name, expression) = (to, nil)
            case .remove(let field): (name, expression) = (field, nil)
            }
            nameBytes = name.utf8.count
            constant = expression?.constant
        }
    }

    public init(operations: [Operation], onError: ExpressionErrorPolicy = .drop) {
        self.operations = operations
        self.onError = onError
        deadLetters = DeadLetterSettings()
        targets = operations.map(Target.init)
    }

    init(config: ConfigReader) throws {
        (onError, deadLetters) = ExpressionErrorPolicy.read(from: config)
        var operations: [Operation] = []
        var failed = false
        for pair in config.node.mapping ?? [] {
            guard let key = pair.key.scalar, !pair.value.isNull else { continue }
            switch key {
            case "set":
                guard let entries = pair.value.mapping else {
                    config.error("option 'set' must be a mapping of field: expression", at: "set")
                    failed = true
                    continue
                }
                for entry in entries {
                    guard let name = Self.fieldName(entry.key, config) else {
                        failed = true
                        continue
                    }
                    guard let expression = config.expression(in: entry.value, label: "set.\(name)") else {
                        failed = true
                        continue
                    }
                    operations.append(.set(name, expression))
                }
            case "rename":
                for (from, to) in config.stringMap("rename") ?? [] {
                    guard !from.isEmpty, !to.isEmpty else {
                        config.error("'rename' entries need both names, as old_name: new_name", at: "rename")
                        failed = true
                        continue
                    }
                    operations.append(.rename(from: from, to: to))
                }
            case "remove":
                for name in config.stringList("remove") ?? [] { operations.append(.remove(name)) }
            default:
                continue
            }
        }
        if operations.isEmpty && !failed {
            config.error("remap needs at least one of 'set', 'rename' or 'remove'")
        }
        if failed || operations.isEmpty { throw PluginBuildError.reported }
        self.operations = operations
        targets = operations.map(Target.init)
    }

    private static func fieldName(_ key: YAMLNode, _ config: ConfigReader) -> String? {
        guard let name = key.scalar, !name.isEmpty else {
            config.diagnostics.error("'set' keys must be field names", file: config.file, at: key.mark)
            return nil
        }
        return name
    }

    public func makeProcessor(context: ComponentContext) -> Processor {
        Processor(stage: self, context: context)
    }

    /// One run's state: the failures' counters and dead-letter file, and where the operations act in the records'
    /// shapes seen last.
    public final class Processor: ChunkProcessor {
        let stage: RemapTransform
        var failures: ExpressionFailures
        var plans = RemapPlans()

        init(stage: RemapTransform, context: ComponentContext) {
            self.stage = stage
            failures = ExpressionFailures(policy: stage.onError, deadLetters: stage.deadLetters, context: context)
        }

        public func process(_ chunk: consuming EventChunk<Record>) -> EventChunk<Record>? {
            // The records are changed where they are, in the chunk's own array (taken out of the chunk so that it
            // is the only reference, and copy-on-write copies nothing): no array per chunk, and no fields' storage
            // per record beyond what a new field needs.
            // The byte count measured upstream is adjusted by what each change adds or takes away, so the outbox
            // walks no record again.
            var byteCount = chunk.measuredByteCount
            var records = chunk.takeEvents()
            // A local copy for the loop: passing the class's property inout would check exclusive access per record.
            var failures = self.failures
            defer { self.failures = failures }
            var plans = self.plans
            self.plans = RemapPlans()  // so that the local copy is the only reference to its storage
            defer { self.plans = plans }
            var kept = 0
            for position in records.indices {
                var byteDelta = 0
                let applied = stage.apply(
                    to: &records[position], plans: &plans, failures: &failures, byteDelta: &byteDelta)
                guard applied else {
                    // Dropped: what it counted for upstream is its size now less what the operations added.
                    byteCount = byteCount.map { $0 &- (records[position].byteCount &- byteDelta) }
                    continue
                }
                byteCount = byteCount.map { $0 &+ byteDelta }
                if kept != position { records.swapAt(kept, position) }
                kept += 1
            }
            failures.settle(chunk.acknowledgements)
            if kept < records.count { records.removeLast(records.count - kept) }
            if records.isEmpty {
                chunk.acknowledgements.resolve(.delivered)
                return nil
            }
            chunk.restore(&records, byteCount: byteCount)
            return chunk
        }

        public func finish() { failures.finish() }
    }

    /// Applies every operation to `record` in place, adding to `byteDelta` how much each changed its
    /// ``Record/byteCount``; false when an expression failed and `on_error` dropped it.
    func apply(to record: inout Record, failures: inout ExpressionFailures, byteDelta: inout Int) -> Bool {
        // A dead letter holds the record as it arrived, so that one is kept aside; the other policies need no copy
        // (keeping one would make the first change copy the fields' storage).
        let original = failures.policy == .deadLetter ? record : nil
        return apply(operations[...], to: &record, original: original, failures: &failures, byteDelta: &byteDelta)
    }

    /// ``apply(to:failures:byteDelta:)`` by the steps `plans` has (or makes now) for the record's shape: the same
    /// changes, each at the position the plan found for it instead of looked up by name.
    func apply(
        to record: inout Record, plans: inout RemapPlans, failures: inout ExpressionFailures, byteDelta: inout Int
    ) -> Bool {
        // `record` is inout so that its fields are read where they are: read out of the records' array, they would be
        // copied (a reference count) first.
        guard let steps = plans.steps(for: record.fields, operations: operations) else {
            return apply(to: &record, failures: &failures, byteDelta: &byteDelta)
        }
        return plans.steps.withUnsafeBufferPointer {
            apply(UnsafeBufferPointer(rebasing: $0[steps]), to: &record, failures: &failures, byteDelta: &byteDelta)
        }
    }

    private func apply(
        _ steps: UnsafeBufferPointer<RemapPlans.Step>, to record: inout Record, failures: inout ExpressionFailures,
        byteDelta: inout Int
    ) -> Bool {
        let original = failures.policy == .deadLetter ? record : nil
        // The names and expressions read where they are: a copy would take a reference count on each per record.
        return targets.withUnsafeBufferPointer { targets in
            for step in steps {
                switch step.kind {
                case .set:
                    do {
                        let value = try targets[step.operation].constant
                            ?? targets[step.operation].expression!.evaluate(record.fields)
                        let nameBytes = targets[step.operation].nameBytes
                        byteDelta &+= Fields.Field.byteCount(nameBytes: nameBytes, value: value)
                        if step.position >= 0 {
                            let replaced = record.fields.replaceValue(at: step.position, with: value)
                            byteDelta &-= Fields.Field.byteCount(nameBytes: nameBytes, value: replaced)
                        } else {
                            record.fields.append(targets[step.operation].name, value)
                        }
                    } catch {
                        let label = "set.\(targets[step.operation].name)"
                        guard failures.handle(original ?? record, label: label, error: error) else { return false }
                        // Kept without a field the plan counted on: the later positions no longer hold.
                        if step.position < 0 {
                            return apply(
                                operations[(step.operation + 1)...], to: &record, original: original,
                                failures: &failures, byteDelta: &byteDelta)
                        }
                    }
                case .rename:
                    byteDelta &+= record.fields.renameField(at: step.position, to: targets[step.operation].name)
                case .remove:
                    byteDelta &-= record.fields.removeField(at: step.position).byteCount
                }
            }
            return true
        }
    }

    /// Applies `operations` by name to `record` as the ones before them left it; `original` is the record as it
    /// arrived, for a dead letter.
    private func apply(
        _ operations: ArraySlice<Operation>, to record: inout Record, original: Record?,
        failures: inout ExpressionFailures, byteDelta: inout Int
    ) -> Bool {
        for operation in operations {
            switch operation {
            case .set(let name, let expression):
                do {
                    // Expressions see the record as the operations before them left it.
                    let value = try expression.evaluate(record.fields)
                    byteDelta &+= Fields.Field.byteCount(name: name, value: value)
                    if let replaced = record.fields.updateValue(value, forName: name) {
                        byteDelta &-= Fields.Field.byteCount(name: name, value: replaced)
                    }
                } catch {
                    guard failures.handle(original ?? record, label: "set.\(name)", error: error) else { return false }
                }
            case .rename(let from, let to):
                byteDelta &+= record.fields.renameMeasured(from, to: to) ?? 0
            case .remove(let name):
                if let removed = record.fields.removeField(named: name) { byteDelta &-= removed.byteCount }
            }
        }
        return true
    }
}
