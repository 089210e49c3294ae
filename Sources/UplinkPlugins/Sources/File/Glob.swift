#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif
import CUplinkLinux

/// A shell-style path pattern: `*` and `?` within one path component, `[abc]`, `[a-z]`, `[!x]` character
/// classes, `{a,b}` alternatives, and `**` for any number of directories (`/var/log/**/*.log`).
///
/// Matching is pure; ``expand()`` walks the file system to list the regular files that match.
struct Glob: Sendable, Equatable, CustomStringConvertible {
    enum Component: Sendable, Equatable {
        case literal(String)
        case wildcard([UInt8])
        /// `**`: zero or more directories.
        case recursive
    }

    let pattern: String
    /// One list of components per `{a,b}` alternative.
    let alternatives: [[Component]]
    let isAbsolute: Bool

    var description: String { pattern }

    struct Failure: Error, Equatable, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    init(_ pattern: String) throws(Failure) {
        guard !pattern.isEmpty else { throw Failure(message: "a pattern must not be empty") }
        self.pattern = pattern
        isAbsolute = pattern.hasPrefix("/")
        var alternatives: [[Component]] = []
        for expanded in try Self.expandBraces(pattern) {
            var components: [Component] = []
            for part in expanded.split(separator: "/", omittingEmptySubsequences: true) {
                if part == "**" {
                    if components.last != .recursive { components.append(.recursive) }
                } else if part.contains("**") {
                    throw Failure(message: "'**' must be a whole path component, as in /var/log/**/*.log")
                } else if part.contains(where: { "*?[".contains($0) }) {
                    let bytes = Array(part.utf8)
                    try Self.checkClasses(bytes)
                    components.append(.wildcard(bytes))
                } else {
                    components.append(.literal(String(part)))
                }
            }
            guard !components.isEmpty else { throw Failure(message: "'\(pattern)' names no file") }
            if components.last == .recursive {
                throw Failure(message: "'\(pattern)' ends in '**'; add a file pattern, as in /var/log/**/*.log")
            }
            alternatives.append(components)
        }
        self.alternatives = alternatives
    }

    /// Whether a path matches (a path without `/` is matched against a pattern without `/` only).
    func matches(_ path: String) -> Bool {
        let names = path.split(separator: "/", omittingEmptySubsequences: true).map { Array($0.utf8) }
        for components in alternatives where Self.match(components[...], names[...]) { return true }
        return false
    }

    /// Whether a file name (the last path component) matches; used for exclude patterns without a `/`.
    func matchesName(_ path: String) -> Bool {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return matches(name)
    }

    /// True when the pattern has no `/`: it is matched against file names only.
    var isNamePattern: Bool { !pattern.contains("/") }

    private static func match(_ components: ArraySlice<Component>, _ names: ArraySlice<[UInt8]>) -> Bool {
        guard let first = components.first else { return names.isEmpty }
        switch first {
        case .recursive:
            var rest = names
            while true {
                if match(components.dropFirst(), rest) { return true }
                if rest.isEmpty { return false }
                rest = rest.dropFirst()
            }
        case .literal(let literal):
            guard let name = names.first, name.elementsEqual(literal.utf8) else { return false }
            return match(components.dropFirst(), names.dropFirst())
        case .wildcard(let pattern):
            guard let name = names.first, matchComponent(pattern[...], name[...]) else { return false }
            return match(components.dropFirst(), names.dropFirst())
        }
    }

    /// Matches one path component against `*`, `?` and `[...]` (byte-wise, so any encoding works).
    static func matchComponent(_ pattern: ArraySlice<UInt8>, _ name: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex
        var n = name.startIndex
        // Position to come back to after the last `*`: classic linear-time wildcard matching.
        var starP: Int? = nil
        var starN = n
        while n < name.endIndex {
            if p < pattern.endIndex {
                switch pattern[p] {
                case UInt8(ascii: "*"):
                    starP = p
                    starN = n
                    p += 1
                    continue
                case UInt8(ascii: "?"):
                    p += 1
                    n += 1
                    continue
                case UInt8(ascii: "["):
                    if let (matched, next) = matchClass(pattern, at: p, byte: name[n]), matched {
                        p = next
                        n += 1
                        continue
                    }
                default:
                    if pattern[p] == name[n] {
                        p += 1
                        n += 1
                        continue
                    }
                }
            }
            guard let star = starP else { return false }
            p = star + 1
            starN += 1
            n = starN
        }
        while p < pattern.endIndex && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.endIndex
    }

    /// Matches `[...]` at `index`; returns whether `byte` is in the class and the index after `]`.
    private static func matchClass(_ pattern: ArraySlice<UInt8>, at index: Int, byte: UInt8) -> (Bool, Int)? {
        var i = index + 1
        var negate = false
        if i < pattern.endIndex && (pattern[i] == UInt8(ascii: "!") || pattern[i] == UInt8(ascii: "^")) {
            negate = true
            i += 1
        }
        var matched = false
        var first = true
        while i < pattern.endIndex && (first || pattern[i] != UInt8(ascii: "]")) {
            first = false
            let low = pattern[i]
            if i + 2 < pattern.endIndex && pattern[i + 1] == UInt8(ascii: "-") && pattern[i + 2] != UInt8(ascii: "]") {
                if low <= byte && byte <= pattern[i + 2] { matched = true }
                i += 3
            } else {
                if low == byte { matched = true }
                i += 1
            }
        }
        guard i < pattern.endIndex else { return nil }
        return (matched != negate, i + 1)
    }

    private static func checkClasses(_ bytes: [UInt8]) throws(Failure) {
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "[") {
                guard matchClass(bytes[...], at: index, byte: 0) != nil else {
                    throw Failure(message: "unclosed '[' in a pattern")
                }
                var i = index + 1
                if i < bytes.count && (bytes[i] == UInt8(ascii: "!") || bytes[i] == UInt8(ascii: "^")) { i += 1 }
                i += 1
                while bytes[i] != UInt8(ascii: "]") { i += 1 }
                index = i
            }
            index += 1
        }
    }

    /// `a{b,c}d` → `abd`, `acd` (nested braces work; an unmatched brace is an error).
    static func expandBraces(_ pattern: String) throws(Failure) -> [String] {
        let characters = Array(pattern)
        guard let open = characters.firstIndex(of: "{") else {
            if characters.contains("}") { throw Failure(message: "unmatched '}' in '\(pattern)'") }
            return [pattern]
        }
        var depth = 0
        var close: Int? = nil
        var commas: [Int] = []
        for index in open..<characters.count {
            switch characters[index] {
            case "{": depth += 1
            case "}":
                depth -= 1
                if depth == 0 { close = index }
            case "," where depth == 1: commas.append(index)
            default: break
            }
            if close != nil { break }
        }
        guard let close else { throw Failure(message: "unmatched '{' in '\(pattern)'") }
        let prefix = String(characters[..<open])
        let suffix = String(characters[(close + 1)...])
        let bounds = [open] + commas + [close]
        var results: [String] = []
        for index in 0..<(bounds.count - 1) {
            let option = String(characters[(bounds[index] + 1)..<bounds[index + 1]])
            results.append(contentsOf: try expandBraces(prefix + option + suffix))
        }
        return results
    }
}

// MARK: - Walking the file system

extension Glob {
    /// What a scan found: matching regular files and the directories it looked into (to watch them).
    struct Scan {
        var files: [String] = []
        var directories: [String] = []
        /// Paths on the way to a match that cannot be read, with the errno (not the ones that do not exist).
        var unreadable: [String: Int32] = [:]
    }

    /// Lists the regular files matching the pattern (symbolic links to files count; `**` does not follow
    /// symbolic links to directories, so a link loop cannot trap it).
    func expand(into scan: inout Scan, maxDepth: Int = 32) {
        for components in alternatives {
            let root = isAbsolute ? "/" : "."
            walk(root, components[...], depth: 0, maxDepth: maxDepth, into: &scan)
        }
    }

    private func walk(
        _ directory: String, _ components: ArraySlice<Component>, depth: Int, maxDepth: Int, into scan: inout Scan
    ) {
        guard let component = components.first, depth <= maxDepth else { return }
        let isLast = components.count == 1
        switch component {
        case .literal(let name):
            let path = Self.join(directory, name)
            if isLast {
                scan.directories.append(directory)
                if Self.isRegularFile(path, unreadable: &scan.unreadable) { scan.files.append(path) }
            } else if Self.isDirectory(path, unreadable: &scan.unreadable) {
                walk(path, components.dropFirst(), depth: depth + 1, maxDepth: maxDepth, into: &scan)
            }
        case .wildcard(let pattern):
            scan.directories.append(directory)
            for (name, _) in Self.entries(of: directory, unreadable: &scan.unreadable)
            where Self.matchComponent(pattern[...], Array(name.utf8)[...]) {
                let path = Self.join(directory, name)
                if isLast {
                    if Self.isRegularFile(path, unreadable: &scan.unreadable) { scan.files.append(path) }
                } else if Self.isDirectory(path, unreadable: &scan.unreadable, required: false) {
                    walk(path, components.dropFirst(), depth: depth + 1, maxDepth: maxDepth, into: &scan)
                }
            }
        case .recursive:
            // Zero directories, then one more level for every real (not symlinked) subdirectory.
            walk(directory, components.dropFirst(), depth: depth, maxDepth: maxDepth, into: &scan)
            for (name, isDirectory) in Self.entries(of: directory, unreadable: &scan.unreadable) where isDirectory {
                walk(Self.join(directory, name), components, depth: depth + 1, maxDepth: maxDepth, into: &scan)
            }
        }
    }

    static func join(_ directory: String, _ name: String) -> String {
        if directory == "/" { return "/" + name }
        if directory == "." { return name }
        return directory + "/" + name
    }

    /// The entries of a directory except `.` and `..`, with whether each is a real directory (not a link).
    static func entries(of directory: String) -> [(String, Bool)] {
        var ignored: [String: Int32] = [:]
        return entries(of: directory, unreadable: &ignored)
    }

    /// The entries of a directory; one that exists but cannot be listed is added to `unreadable`.
    static func entries(of directory: String, unreadable: inout [String: Int32]) -> [(String, Bool)] {
        guard let handle = opendir(directory) else {
            if errno != ENOENT { unreadable[directory] = errno }
            return []
        }
        defer { closedir(handle) }
        var result: [(String, Bool)] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            var isDirectory = entry.pointee.d_type == UInt8(DT_DIR)
            if entry.pointee.d_type == UInt8(DT_UNKNOWN) {
                var status = stat()
                isDirectory = lstat(join(directory, name), &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
            }
            result.append((name, isDirectory))
        }
        return result
    }

    /// Whether `path` is a regular file; one that cannot be looked at (no search right on a directory above
    /// it, a link loop, a file where a directory should be) is added to `unreadable`.
    static func isRegularFile(_ path: String, unreadable: inout [String: Int32]) -> Bool {
        var status = stat()
        guard stat(path, &status) == 0 else {
            if errno != ENOENT { unreadable[path] = errno }
            return false
        }
        return (status.st_mode & S_IFMT) == S_IFREG
    }

    /// Whether `path` is a directory; one that cannot be looked at, or that is not a directory although the
    /// pattern names it (`required`: `/var/log/app.log/*.log`, not a file that `/var/log/*/x.log` lists), is
    /// added to `unreadable`.
    static func isDirectory(_ path: String, unreadable: inout [String: Int32], required: Bool = true) -> Bool {
        var status = stat()
        guard stat(path, &status) == 0 else {
            if errno != ENOENT { unreadable[path] = errno }
            return false
        }
        guard (status.st_mode & S_IFMT) == S_IFDIR else {
            if required { unreadable[path] = ENOTDIR }
            return false
        }
        return true
    }
}

/// The `include` and `exclude` patterns of a file source.
struct PathFilter: Sendable {
    var include: [Glob]
    var exclude: [Glob]

    /// Whether an exclude pattern removes `path` (patterns without `/` match the file name).
    func isExcluded(_ path: String) -> Bool {
        exclude.contains { $0.isNamePattern ? $0.matchesName(path) : $0.matches(path) }
    }

    /// The matching files (each path once, sorted) and the directories to watch for new ones.
    func scan() -> Glob.Scan {
        var scan = Glob.Scan()
        for glob in include { glob.expand(into: &scan) }
        var seen = Set<String>()
        scan.files = scan.files.filter { seen.insert($0).inserted && !isExcluded($0) }.sorted()
        var seenDirectories = Set<String>()
        scan.directories = scan.directories.filter { seenDirectories.insert($0).inserted }
        scan.unreadable = scan.unreadable.filter { !isExcluded($0.key) }
        return scan
    }
}
