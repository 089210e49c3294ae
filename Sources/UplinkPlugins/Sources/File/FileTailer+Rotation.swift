import Logging
import UplinkCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Finding files, recognising them again, and following them through rotation.
extension FileTailer {
    // MARK: Scanning

    /// Expands the patterns: starts reading new files, marks files no longer matched as draining (they are read
    /// to their end, then closed), and watches the directories the patterns look into.
    func rescan(initial: Bool) {
        let scan = settings.filter.scan()
        watcher.watchDirectories(Array(scan.directories.prefix(1024)))
        var unreadable = scan.unreadable
        defer { reportUnreadable(unreadable) }
        var matched: [InodeKey: String] = [:]
        var order: [InodeKey] = []
        for path in scan.files {
            guard let status = FileStatus.of(path: path), status.isRegular else { continue }
            if matched[status.key] == nil {
                matched[status.key] = path
                order.append(status.key)
            }
        }
        var tracked: Set<InodeKey> = []
        for file in files.values {
            tracked.insert(file.identity.key)
            if let path = matched[file.identity.key] {
                if file.draining {
                    logger.info("file is matched again", metadata: ["file.path": "\(path)"])
                    setDraining(file, false)
                }
                if path != file.path {
                    file.path = path
                    book.update(file.id, path: path)
                }
            } else if !file.draining {
                setDraining(file, true)
                logger.info(
                    "file rotated or no longer matched; reading it to its end",
                    metadata: ["file.path": "\(file.path)", "file.offset": "\(file.readOffset)"])
            }
        }
        for key in order where !tracked.contains(key) {
            if let errno = open(matched[key]!, initial: initial) { unreadable[matched[key]!] = errno }
        }
        if !initial { pruneDormant() }
    }

    /// Logs and counts the paths that became unreadable, or readable again, since the last scan (see
    /// ``UnreadablePaths``): once per change, not once per scan.
    func reportUnreadable(_ found: [String: Int32]) {
        for change in unreadablePaths.update(found) {
            switch change {
            case .unreadable(let path, let errno):
                context.metrics.error()
                logger.warning(
                    "cannot read a path the source is configured to read; retrying at each scan",
                    metadata: [
                        "file.path": "\(path)", "file.errno": "\(errno)",
                        "error": "\(UnreadablePaths.describe(errno))",
                    ])
            case .readable(let path):
                logger.info("path can be read again", metadata: ["file.path": "\(path)"])
            }
        }
    }

    /// Opens a newly matched file: resumes from its checkpoint when it is a file seen before (same device,
    /// inode and first bytes), otherwise starts per `read_from`. Returns the errno when it cannot be read.
    private func open(_ path: String, initial: Bool) -> Int32? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            // A file removed between the scan and here is not a problem; anything else is.
            return errno == ENOENT ? nil : errno
        }
        guard let status = FileStatus.of(fd: fd), status.isRegular else {
            _ = Glibc.close(fd)
            return nil
        }
        guard let fingerprint = FileFingerprint.read(fd: fd, maxLength: settings.fingerprintBytes) else {
            // Opened, but its first bytes cannot be read (EIO, EISDIR): a problem too.
            let failure = errno
            _ = Glibc.close(fd)
            return failure
        }
        let identity = FileIdentity(device: status.key.device, inode: status.key.inode, fingerprint: fingerprint)
        var start: Int64 = 0
        var id: Int? = nil
        for (candidate, entry) in book.dormantEntries() where entry.identity.key == status.key {
            let sameContent =
                entry.identity.fingerprint.length <= fingerprint.length
                && FileFingerprint.read(fd: fd, maxLength: entry.identity.fingerprint.length)
                    == entry.identity.fingerprint
            if !sameContent {
                // The inode was reused, or the file was truncated and written again. At startup the orphan pass
                // still looks for its rotated copy; later it is simply stale.
                if !initial { book.release(candidate, keep: false) }
                continue
            }
            if entry.offset <= status.size {
                start = entry.offset
                id = candidate
                book.revive(candidate, identity: identity, path: path, rotated: false)
                break
            }
            // Shorter than the checkpoint: truncated while not read. The rest may be in a rotated copy.
            if !initial {
                if !adoptCopy(of: candidate, entry: entry) { book.release(candidate, keep: false) }
            }
        }
        let resumed = id != nil
        if id == nil {
            start = TailPolicy.startOffset(
                size: status.size, readFrom: settings.readFrom, initialScan: initial, firstStart: book.firstStart)
            id = book.create(identity: identity, path: path, offset: start)
        }
        let file = makeFile(id: id!, path: path, fd: fd, identity: identity, offset: start)
        file.lastSize = status.size
        logger.info(
            resumed ? "resuming file" : "tailing file",
            metadata: ["file.path": "\(path)", "file.offset": "\(start)", "file.inode": "\(status.key.inode)"])
        return nil
    }

    func makeFile(id: Int, path: String, fd: Int32, identity: FileIdentity, offset: Int64) -> TailedFile {
        let origin = EventOrigin(sourceID: context.id, location: path)
        let framer = EventFramer(origin: origin, framer: settings.framing.makeFramer(), offset: offset)
        let multiline = settings.multiline.map {
            MultilineAggregator(maxLines: $0.maxLines, maxBytes: settings.framing.maxFrameBytes)
        }
        let file = TailedFile(id: id, path: path, fd: fd, identity: identity, framer: framer, multiline: multiline)
        file.seek(to: offset)
        file.skips = book.carriedRanges(id, fileSize: FileStatus.of(fd: fd)?.size ?? 0).filter { $0.lowerBound >= offset }
        file.watch = watcher.watchFile(path)
        files[id] = file
        return file
    }

    /// A file starts or stops being finished rather than followed; the checkpoint remembers it, so a restart
    /// finishes it too.
    func setDraining(_ file: TailedFile, _ draining: Bool) {
        file.draining = draining
        book.update(file.id, rotated: draining)
    }

    // MARK: Checkpoints left by an earlier run

    /// At startup, checkpoints whose file is not at a matched path any more: a file rotated while we were
    /// stopped is found again (same inode in the same directory, or a copy with the same first bytes) and read
    /// from its checkpoint to its end, so a restart in the middle of a rotation loses nothing.
    func resolveOrphans() {
        let tracked = Set(files.values.map(\.identity.key))
        for (id, entry) in book.dormantEntries() {
            let directory = FileIO.parentDirectory(of: entry.path)
            var location: String? = nil
            if FileStatus.of(path: entry.path)?.key == entry.identity.key {
                location = entry.path
            } else {
                location = Self.find(inode: entry.identity.key, in: directory)
            }
            if let location, !tracked.contains(entry.identity.key) {
                let fd = Glibc.open(location, O_RDONLY | O_CLOEXEC)
                if fd >= 0, let status = FileStatus.of(fd: fd), status.key == entry.identity.key,
                    entry.identity.fingerprint.matches(fd: fd), status.size >= entry.offset
                {
                    switch TailPolicy.orphanAction(
                        foundAt: location, recordedPath: entry.path, rotated: entry.rotated, size: status.size,
                        offset: entry.offset)
                    {
                    case .drain:
                        startDraining(id: id, path: location, fd: fd, key: status.key, entry: entry)
                    case .keep:
                        _ = Glibc.close(fd)
                        book.update(id, path: location)
                    case .leave:
                        _ = Glibc.close(fd)
                    }
                    continue
                }
                if fd >= 0 { _ = Glibc.close(fd) }
            }
            if adoptCopy(of: id, entry: entry, excluding: tracked) { continue }
            logger.debug("forgetting the checkpoint of a file that is gone", metadata: ["file.path": "\(entry.path)"])
            book.release(id, keep: false)
        }
    }

    /// Looks for a copy of a truncated file (copytruncate) next to it and reads it from the checkpoint.
    @discardableResult
    private func adoptCopy(of id: Int, entry: CheckpointEntry, excluding: Set<InodeKey> = []) -> Bool {
        let tracked = excluding.union(files.values.map(\.identity.key))
        guard
            let (path, fd, status) = findCopy(
                of: entry.identity.fingerprint, minSize: entry.offset, near: entry.path,
                excluding: tracked.union([entry.identity.key]))
        else { return false }
        if status.size == entry.offset {
            _ = Glibc.close(fd)
            book.update(
                id,
                identity: FileIdentity(
                    device: status.key.device, inode: status.key.inode, fingerprint: entry.identity.fingerprint),
                path: path, rotated: true)
            return true
        }
        startDraining(id: id, path: path, fd: fd, key: status.key, entry: entry)
        return true
    }

    private func startDraining(id: Int, path: String, fd: Int32, key: InodeKey, entry: CheckpointEntry) {
        let identity = FileIdentity(device: key.device, inode: key.inode, fingerprint: entry.identity.fingerprint)
        book.revive(id, identity: identity, path: path, rotated: true)
        let file = makeFile(id: id, path: path, fd: fd, identity: identity, offset: entry.offset)
        file.draining = true
        logger.info(
            "reading the rest of a file rotated while stopped",
            metadata: ["file.path": "\(path)", "file.previous_path": "\(entry.path)", "file.offset": "\(entry.offset)"])
    }

    /// Drops dormant checkpoints whose file is gone or is another file now.
    private func pruneDormant() {
        for (id, entry) in book.dormantEntries() where FileStatus.of(path: entry.path)?.key != entry.identity.key {
            book.release(id, keep: false)
        }
    }

    // MARK: Truncation and release

    /// copytruncate: the file is shorter than what was read, or begins differently. The rest of the old
    /// content is read from the copy when one is found next to it; the file itself is read again from 0.
    func checkTruncation(_ file: TailedFile) {
        guard let status = FileStatus.of(fd: file.fd) else { return }
        file.links = status.links
        guard status.size != file.lastSize else { return }
        file.lastSize = status.size
        let fingerprintMatches = status.size < file.readOffset || file.identity.fingerprint.matches(fd: file.fd)
        guard
            TailPolicy.isTruncated(
                readOffset: file.readOffset, size: status.size, fingerprintMatches: fingerprintMatches)
        else { return }
        needRescan = true
        let tracked = Set(files.values.map(\.identity.key))
        if let (path, fd, copy) = findCopy(
            of: file.identity.fingerprint, minSize: file.readOffset, near: file.path, excluding: tracked)
        {
            logger.info(
                "file truncated; reading the rest of its content from its rotated copy",
                metadata: ["file.path": "\(file.path)", "file.copy": "\(path)", "file.offset": "\(file.readOffset)"])
            watcher.unwatchFile(file.watch)
            file.closeDescriptor()
            file.fd = fd
            file.identity = FileIdentity(
                device: copy.key.device, inode: copy.key.inode, fingerprint: file.identity.fingerprint)
            file.path = path
            file.watch = watcher.watchFile(path)
            file.draining = true
            file.lastSize = copy.size
            _ = lseek(fd, off_t(file.readOffset), SEEK_SET)
            book.update(file.id, identity: file.identity, path: path, rotated: true)
            return
        }
        logger.warning(
            "file truncated and no rotated copy found; reading it again from its beginning",
            metadata: ["file.path": "\(file.path)", "file.offset": "\(file.readOffset)", "file.size": "\(status.size)"])
        // What is pending belongs to the old content: it is dropped with it. A new record starts at 0 on the
        // next scan.
        watcher.unwatchFile(file.watch)
        file.closeDescriptor()
        truncatedOfClosedFiles += file.framer.truncatedFrames
        files[file.id] = nil
        book.release(file.id, keep: false)
    }

    /// Closes files that reached their end and were deleted, or were rotated away and stayed quiet for
    /// `rotate_wait`.
    func releaseFinished() async throws {
        let now = ContinuousClock.now
        for file in files.values.sorted(by: { $0.id < $1.id }) {
            if TailPolicy.shouldRelease(
                atEnd: file.atEnd, links: file.links, draining: file.draining, quietFor: now - file.lastData,
                rotateWait: settings.rotateWait)
            {
                try await release(file)
            }
        }
    }

    func release(_ file: TailedFile) async throws {
        try await flushPending(file)
        watcher.unwatchFile(file.watch)
        file.closeDescriptor()
        truncatedOfClosedFiles += file.framer.truncatedFrames
        files[file.id] = nil
        if file.links == 0 {
            book.release(file.id, keep: false)
            logger.info(
                "closed deleted file", metadata: ["file.path": "\(file.path)", "file.offset": "\(file.readOffset)"])
            return
        }
        // Remember where it went, so it is recognised (not read again) if a pattern matches it later.
        var location: String? = nil
        if FileStatus.of(path: file.path)?.key == file.identity.key {
            location = file.path
        } else {
            location = Self.find(inode: file.identity.key, in: FileIO.parentDirectory(of: file.path))
        }
        book.release(file.id, keep: location != nil, path: location)
        logger.info(
            "closed rotated file",
            metadata: ["file.path": "\(location ?? file.path)", "file.offset": "\(file.readOffset)"])
    }

    // MARK: Looking around

    /// The path of the file with this device and inode in `directory`, if any.
    static func find(inode key: InodeKey, in directory: String) -> String? {
        for (name, isDirectory) in Glob.entries(of: directory) where !isDirectory {
            let path = Glob.join(directory, name)
            if FileStatus.of(path: path)?.key == key { return path }
        }
        return nil
    }

    /// A regular file next to `path` that begins with the fingerprinted bytes and is at least `minSize` long:
    /// the copy logrotate's copytruncate made. Returns it open.
    func findCopy(
        of fingerprint: FileFingerprint, minSize: Int64, near path: String, excluding: Set<InodeKey>
    ) -> (String, Int32, FileStatus)? {
        guard fingerprint.length > 0 else { return nil }
        let directory = FileIO.parentDirectory(of: path)
        for (name, isDirectory) in Glob.entries(of: directory).sorted(by: { $0.0 < $1.0 }) where !isDirectory {
            let candidate = Glob.join(directory, name)
            guard let status = FileStatus.of(path: candidate), status.isRegular, status.size >= minSize,
                !excluding.contains(status.key)
            else { continue }
            let fd = Glibc.open(candidate, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if fingerprint.matches(fd: fd), let opened = FileStatus.of(fd: fd) {
                return (candidate, fd, opened)
            }
            _ = Glibc.close(fd)
        }
        return nil
    }
}
