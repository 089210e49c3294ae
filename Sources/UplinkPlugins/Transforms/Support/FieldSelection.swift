import UplinkCore

/// Which record fields a payload takes and under which names: `properties:` and `outputs:` of `thing_model`,
/// `reported:` of `shadow`.
///
/// Written as a mapping `{name: field}` (select and rename; `name:` alone keeps the field's own name) or as a
/// list `[a, b]` (select). Absent: every field of the record under its own name, in record order. A selected
/// field missing from a record is left out of that record's payload (missing is not null).
struct FieldSelection: Sendable {
    struct Entry: Sendable, Equatable {
        /// The name in the payload.
        var name: String
        /// The record field it comes from.
        var field: String
    }

    /// nil: every field.
    var entries: [Entry]?

    static let all = FieldSelection(entries: nil)

    /// Reads the option, reporting duplicate names and names `check` refuses (it returns the problem) at the
    /// entry where they are written.
    static func read(_ option: String, from config: ConfigReader, check: (String) -> String? = { _ in nil }) -> FieldSelection {
        guard let written = config.entries(option) else { return .all }
        var entries: [Entry] = []
        var seen = Set<String>()
        for entry in written {
            if let problem = check(entry.key) {
                config.error("'\(option)': \(problem)", at: entry)
                continue
            }
            if !seen.insert(entry.key).inserted {
                config.error("'\(option)': '\(entry.key)' is listed twice", at: entry)
                continue
            }
            entries.append(Entry(name: entry.key, field: entry.value ?? entry.key))
        }
        if written.isEmpty { config.error("'\(option)' is empty: leave it out to take every field", at: option) }
        return FieldSelection(entries: entries)
    }

    /// Calls `body` with each selected name and value present in `fields`. With every field selected, the fields
    /// `isExcluded` names (a time or identifier field) are skipped.
    func forEach(
        in fields: Fields, excluding isExcluded: (String) -> Bool, _ body: (String, Value) throws -> Void
    ) rethrows {
        if let entries {
            for entry in entries {
                if let value = fields[entry.field] { try body(entry.name, value) }
            }
        } else {
            for field in fields where !isExcluded(field.name) {
                try body(field.name, field.value)
            }
        }
    }
}
