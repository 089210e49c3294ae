import Logging
import UplinkCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The running file source: finds files, reads them, follows rotation, and sends one chunk per read with an
/// acknowledgement that advances the file's checkpoint.
///
/// Owned by the source's task (not shared): the only state other tasks touch is the ``CheckpointBook``.
final class FileTailer {
    let settings: FileTailSource.Settings
    let context: ComponentContext
    let output: Outbox<RawEvent>
    let book: CheckpointBook
    let watcher: FileWatcher
    let logger: Logger
    /// Compiled here, in the task that uses it (a compiled pattern is not `Sendable`).
    let startPattern: BoundedRegex?
    /// Files being read, by checkpoint record id (ids grow, so iteration order is discovery order).
    var files: [Int: TailedFile] = [:]
    var needRescan = false
    var lastScan = ContinuousClock.now
    var truncation = TruncationReporter()
    /// What the API reads as bytes behind the end of each file.
    let lag = FileLag()
    /// The paths the source may not read, which `/health` reads as a failure.
    let unreadablePaths = UnreadablePaths()
    /// The progress of reading a large backlog at start-up, on a terminal only; nil once read.
    var backlog: (progress: ProgressLine, total: Int64)?
    /// A backlog smaller than this is read without a progress line.
    static let backlogProgressBytes: Int64 = 4 << 20

    /// Reads per file per round before moving to the next file (1 MiB with 64 KiB reads): fairness.
    static let readsPerRound = 16

    init(settings: FileTailSource.Settings, context: ComponentContext, output: Outbox<RawEvent>, book: CheckpointBook)
        throws
    {
        self.settings = settings
        self.context = context
        self.output = output
        self.book = book
        self.logger = context.logger
        self.watcher = try FileWatcher(mode: settings.watch)
        if let pattern = settings.multiline?.startPattern {
            startPattern = try BoundedRegex(pattern)
        } else {
            startPattern = nil
        }
        let lag = self.lag
        context.metrics.addReporter { lag.report() }
        let unreadablePaths = self.unreadablePaths
        context.metrics.addReporter { unreadablePaths.report() }
        if settings.watch == .auto && !watcher.usesInotify {
            logger.warning(
                "inotify is not available; polling files instead",
                metadata: ["file.poll_interval": "\(settings.pollInterval)"])
        }
    }

    func close() {
        for file in files.values {
            watcher.unwatchFile(file.watch)
            file.closeDescriptor()
        }
        files.removeAll()
        watcher.close()
        truncation.report(
            total: totalTruncated, limit: settings.framing.maxFrameBytes, logger: logger, final: true)
    }

    var truncatedOfClosedFiles = 0
    var totalTruncated: Int {
        truncatedOfClosedFiles + files.values.reduce(0) { $0 + $1.framer.truncatedFrames }
    }

    // MARK: Backlog progress

    var bytesBehind: Int64 { files.values.reduce(0) { $0 + max(0, $1.lastSize - $1.readOffset) } }

    /// A large backlog (`read_from: beginning` on big files, or a long outage to catch up on) shows a
    /// progress line on the terminal; logs and pipes see nothing.
    private func startBacklogProgress() {
        let behind = bytesBehind
        guard behind >= Self.backlogProgressBytes else { return }
        let progress = ProgressLine(
            label: "[\(context.id)] reading the backlog of \(files.count) file\(files.count == 1 ? "" : "s")",
            total: Int(behind), unit: .bytes)
        if progress.isEnabled { backlog = (progress, behind) }
    }

    private func updateBacklogProgress() {
        guard let (progress, total) = backlog else { return }
        let behind = bytesBehind
        progress.update(done: Int(max(0, total - behind)))
        if behind == 0 || files.values.allSatisfy(\.atEnd) {
            progress.finish()
            backlog = nil
        }
    }

    // MARK: The loop

    func run() async throws {
        rescan(initial: true)
        resolveOrphans()
        book.write(final: false)
        startBacklogProgress()
        defer { backlog?.progress.finish() }
        while true {
            try Task.checkCancellation()
            var busy = false
            for id in files.keys.sorted() {
                guard let file = files[id] else { continue }
                if try await step(file) { busy = true }
            }
            try await releaseFinished()
            lag.update(files.values)
            updateBacklogProgress()
            let now = ContinuousClock.now
            if needRescan || now - lastScan >= settings.scanInterval {
                needRescan = false
                lastScan = now
                rescan(initial: false)
            }
            book.writeIfDue()
            truncation.report(total: totalTruncated, limit: settings.framing.maxFrameBytes, logger: logger)
            if busy {
                await Task.yield()
                continue
            }
            if settings.exitOnEOF && files.values.allSatisfy(\.atEnd) {
                for file in files.values.sorted(by: { $0.id < $1.id }) { try await flushPending(file) }
                logger.debug("every file read to its end", metadata: ["file.count": "\(files.count)"])
                return
            }
            let wake = try await watcher.wait(timeout: nextTimeout())
            if wake.rescan { needRescan = true }
        }
    }

    /// Checks one file for truncation, reads what it has (up to the round's budget) and applies the partial
    /// line and multi-line timeouts. Returns true when the budget ran out (more to read).
    private func step(_ file: TailedFile) async throws -> Bool {
        checkTruncation(file)
        guard files[file.id] != nil else { return false }
        var reads = 0
        while reads < Self.readsPerRound {
            if let range = file.skips.first, file.readOffset >= range.lowerBound {
                // Reads stop at a range's start, so the offset is there; past its end (never expected) the range
                // is simply not skipped.
                if file.readOffset < range.upperBound {
                    try await skipDelivered(range, in: file)
                } else {
                    file.skips.removeFirst()
                }
                continue
            }
            let bytes: [UInt8]?
            do {
                bytes = try file.read(size: file.readSize(settings.readSize))
            } catch {
                logger.error(
                    "cannot read file; closing it", metadata: ["file.path": "\(file.path)", "error": "\(error)"])
                context.metrics.error()
                try await release(file)
                return false
            }
            guard let bytes else {
                file.atEnd = true
                break
            }
            reads += 1
            file.atEnd = false
            file.lastData = .now
            var events: [RawEvent] = []
            file.framer.frame(bytes, timestamp: currentTimeMillis(), into: &events)
            if file.multiline != nil { events = joinLines(events, file: file) }
            try await send(events, from: file)
            growFingerprint(file)
        }
        if file.atEnd {
            try await applyTimeouts(file)
            if !file.draining, FileStatus.of(path: file.path)?.key != file.identity.key {
                // Renamed or deleted: the scan decides whether it is still matched under another name.
                needRescan = true
            }
        }
        return reads == Self.readsPerRound
    }

    /// Sends the events of one read (if any) with the acknowledgement that completes the file up to where
    /// every byte is in an event.
    ///
    /// One chunk per read (smaller chunks nearly doubled the CPU per line of the HTTPS pipeline, bench/RESULTS.md,
    /// 2026-12-05 killbound). Its acknowledgement covers the bytes from where the last one ended, and `batch`
    /// cuts it at the event where a batch boundary falls, so a chunk split between a delivered batch and one in
    /// flight at a crash sends again only the second batch's lines.
    private func send(_ events: [RawEvent], from file: TailedFile) async throws {
        let complete = file.completeOffset
        if events.isEmpty {
            if complete > file.registeredThrough {
                book.skip(file.id, to: complete)
                file.registeredThrough = complete
            }
            return
        }
        let token = book.acknowledgement(for: file.id, start: file.registeredThrough, end: complete)
        file.registeredThrough = max(file.registeredThrough, complete)
        try await output.send(events, acknowledgements: Acknowledgements([token]))
    }

    /// Jumps over bytes whose events an earlier run delivered (a range its checkpoint recorded beyond the
    /// offset). The earlier run ended an event where the range begins, so what is held back (a partial line, a
    /// multi-line event) is sent first, as it was then; the range's bytes are then exactly those events.
    private func skipDelivered(_ range: Range<Int64>, in file: TailedFile) async throws {
        try await flushPending(file)
        file.skips.removeFirst()
        file.seek(to: range.upperBound)
        book.skipCarried(file.id, range)
        logger.debug(
            "skipping what was delivered before the restart",
            metadata: ["file.path": "\(file.path)", "file.range": "\(range.lowerBound)..<\(range.upperBound)"])
    }

    private func joinLines(_ lines: [RawEvent], file: TailedFile) -> [RawEvent] {
        guard var aggregator = file.multiline, let startPattern else { return lines }
        var events: [RawEvent] = []
        for line in lines {
            let outcome = startPattern.firstMatch(in: line.bytes)
            // A line too costly to decide joins the event being gathered: nothing is lost, and it is counted.
            if outcome == .overBudget { context.metrics.error() }
            let isStart = outcome == .matched
            aggregator.add(line, isStart: isStart, into: &events)
        }
        file.multiline = aggregator
        return events
    }

    /// Sends a partial last line after `partial_line_timeout`, a multi-line event after its `timeout`.
    private func applyTimeouts(_ file: TailedFile) async throws {
        let quiet = ContinuousClock.now - file.lastData
        var events: [RawEvent] = []
        let now = currentTimeMillis()
        if file.framer.hasPendingBytes && settings.partialLineTimeout > .zero && quiet >= settings.partialLineTimeout {
            var lines: [RawEvent] = []
            file.framer.flush(timestamp: now, into: &lines)
            events = file.multiline != nil ? joinLines(lines, file: file) : lines
        }
        if let timeout = settings.multiline?.timeout, quiet >= timeout, !file.framer.hasPendingBytes {
            file.multiline?.flush(into: &events)
        }
        if !events.isEmpty { try await send(events, from: file) }
    }

    /// Everything held back is sent (the file is closed, or the source ends at end of file).
    func flushPending(_ file: TailedFile) async throws {
        var lines: [RawEvent] = []
        file.framer.flush(timestamp: currentTimeMillis(), into: &lines)
        var events = file.multiline != nil ? joinLines(lines, file: file) : lines
        file.multiline?.flush(into: &events)
        try await send(events, from: file)
    }

    /// A small file's fingerprint covers what it has; it is extended as the file grows.
    private func growFingerprint(_ file: TailedFile) {
        guard file.identity.fingerprint.length < settings.fingerprintBytes,
            file.readOffset > Int64(file.identity.fingerprint.length),
            let fingerprint = FileFingerprint.read(fd: file.fd, maxLength: settings.fingerprintBytes),
            fingerprint.length > file.identity.fingerprint.length
        else { return }
        file.identity.fingerprint = fingerprint
        book.update(file.id, identity: file.identity)
    }

    /// How long to wait for a change: until the next scan, checkpoint write or timeout, or the poll interval
    /// when some file cannot be watched.
    private func nextTimeout() -> Duration {
        let now = ContinuousClock.now
        var timeout = settings.scanInterval - (now - lastScan)
        if !watcher.usesInotify || watcher.incomplete { timeout = min(timeout, settings.pollInterval) }
        if let due = book.timeUntilDue() { timeout = min(timeout, due) }
        for file in files.values {
            let quiet = now - file.lastData
            if file.framer.hasPendingBytes && settings.partialLineTimeout > .zero {
                timeout = min(timeout, settings.partialLineTimeout - quiet)
            }
            if let multiline = settings.multiline, !(file.multiline?.isEmpty ?? true), !file.framer.hasPendingBytes {
                timeout = min(timeout, multiline.timeout - quiet)
            }
            if file.draining { timeout = min(timeout, settings.rotateWait - quiet) }
        }
        return max(timeout, .milliseconds(10))
    }
}
