/// Parsers for the units operators write in configs.
public enum ValueParsing {
    /// `500ms`, `2s`, `1.5s`, `1m`, `1h`, `250us`, `0`. A bare number other than 0 is refused: the unit is
    /// where mistakes hide.
    public static func duration(_ text: String) -> Duration? {
        let trimmed = text.trimmingSpaces
        if trimmed == "0" { return .zero }
        let units: [(String, Double)] = [
            ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400),
        ]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            guard !number.isEmpty, let value = Double(number), value.isFinite, value >= 0 else { return nil }
            let nanoseconds = value * scale * 1e9
            guard nanoseconds < 9.2e18 else { return nil }
            return .nanoseconds(Int64(nanoseconds.rounded()))
        }
        return nil
    }

    /// `131072`, `128KiB`, `128KB`, `1MiB`, `1MB`, `64k`. KiB/MiB are binary, KB/MB decimal, as in most tools.
    public static func size(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces
        let units: [(String, Int)] = [
            ("KiB", 1024), ("MiB", 1 << 20), ("GiB", 1 << 30),
            ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
            ("k", 1024), ("K", 1024), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count).trimmingSpaces
            guard let value = Double(number), value >= 0, value.isFinite else { return nil }
            let bytes = value * Double(scale)
            guard bytes < 9.2e18, bytes == bytes.rounded() else { return nil }
            return Int(bytes)
        }
        guard let value = Int(trimmed), value >= 0 else { return nil }
        return value
    }

    /// The closest candidate within a small edit distance, for "did you mean" hints.
    public static func suggestion(for word: String, among candidates: some Sequence<String>) -> String? {
        var best: (String, Int)?
        for candidate in candidates {
            let distance = editDistance(word.lowercased(), candidate.lowercased())
            let limit = max(1, min(3, candidate.count / 3))
            if distance <= limit, best == nil || distance < best!.1 { best = (candidate, distance) }
        }
        if let best { return best.0 }
        // An abbreviation (`warn` for `warning`) when it names one candidate only.
        let lowered = word.lowercased()
        guard lowered.count >= 3 else { return nil }
        let prefixed = candidates.filter { $0.lowercased().hasPrefix(lowered) }
        return prefixed.count == 1 ? prefixed[0] : nil
    }

    /// Edits between two words, a swap of two neighbours counting as one (optimal string alignment), so
    /// `buad`, `valdiate` and `sreial` are one edit from what was meant.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var beforePrevious = Array(repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], beforePrevious[j - 2] + 1)
                }
            }
            (beforePrevious, previous, current) = (previous, current, beforePrevious)
        }
        return previous[b.count]
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
