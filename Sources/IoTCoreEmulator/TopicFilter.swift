/// MQTT topic filter matching, as IoT-Core applies a device's publish ACL: `+` matches exactly one level,
/// `#` (last level only) matches its parent level and everything below it.
///
/// Topics here start with `/`, so their first level is empty (`/PSN/DSN/upload` has the levels
/// `""`, `PSN`, `DSN`, `upload`); MQTT's special rule for topics starting with `$` therefore never applies,
/// and `#` alone matches `/$system/...` too, as it does on the real broker.
enum TopicFilter {
    /// Whether `filter` is a well-formed MQTT topic filter.
    static func isValid(_ filter: String) -> Bool {
        if filter.isEmpty { return false }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains("#") {
                if level != "#" || index != levels.count - 1 { return false }
            }
            if level.contains("+") && level != "+" { return false }
        }
        return true
    }

    /// Whether `topic` (a concrete topic, no wildcards) matches `filter`.
    static func matches(filter: String, topic: String) -> Bool {
        let filterLevels = filter.split(separator: "/", omittingEmptySubsequences: false)
        let topicLevels = topic.split(separator: "/", omittingEmptySubsequences: false)
        var index = 0
        while index < filterLevels.count {
            let level = filterLevels[index]
            if level == "#" {
                // `a/#` also matches `a`: the multi-level wildcard includes the parent level.
                return index == filterLevels.count - 1
            }
            guard index < topicLevels.count else { return false }
            if level != "+" && level != topicLevels[index] { return false }
            index += 1
        }
        return index == topicLevels.count
    }

    /// Whether any filter of `acl` allows `topic`.
    static func allows(_ acl: [String], topic: String) -> Bool {
        acl.contains { Self.matches(filter: $0, topic: topic) }
    }
}
