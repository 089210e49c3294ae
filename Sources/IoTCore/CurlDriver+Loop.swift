internal import CCurl
import Glibc
import Synchronization

extension CurlDriver {
    /// One request on an easy handle. Lives on the driver thread only; libcurl's callbacks reach it through
    /// an unretained pointer, which stays valid because `transfers` holds the box until the transfer is done.
    final class Transfer {
        let id: UInt64
        let easy: UnsafeMutableRawPointer
        let continuation: CheckedContinuation<HTTPResponse, any Error>
        let started = ContinuousClock.now
        let maxResponseBytes: Int
        // The request's own bytes (shared with the caller's message, not copied), handed to libcurl by
        // `curlReadCallback` into its upload buffer; `sent` is where the next piece starts.
        let body: [UInt8]
        var sent = 0
        let errorBuffer: UnsafeMutablePointer<CChar>
        /// The driver's table of open sockets, to ask for a quick ACK when the answer's headers arrive.
        let sockets: UnsafeMutablePointer<uplink_socket_table>
        var headers: UnsafeMutablePointer<curl_slist>?
        var response: [UInt8] = []
        var overflowed = false

        init(
            job: Job, easy: UnsafeMutableRawPointer, maxResponseBytes: Int,
            sockets: UnsafeMutablePointer<uplink_socket_table>
        ) {
            self.id = job.id
            self.sockets = sockets
            self.easy = easy
            self.continuation = job.continuation
            self.maxResponseBytes = maxResponseBytes
            self.body = job.request.body
            self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
            self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
            for header in job.request.headers {
                headers = curl_slist_append(headers, "\(header.name): \(header.value)")
            }
            // Without this libcurl sends "Expect: 100-continue" for larger bodies and waits for an answer
            // that many servers never send.
            headers = curl_slist_append(headers, "Expect:")
        }

        deinit {
            errorBuffer.deallocate()
            curl_slist_free_all(headers)
        }

        /// Copies the next piece of the body into libcurl's buffer; 0 at the end.
        func read(into destination: UnsafeMutableRawPointer, capacity: Int) -> Int {
            let count = min(capacity, body.count - sent)
            guard count > 0 else { return 0 }
            body.withUnsafeBytes { source in
                destination.copyMemory(from: source.baseAddress! + sent, byteCount: count)
            }
            sent += count
            return count
        }

        /// Moves to `offset` of the body (libcurl rewinds to send the request again).
        func seek(to offset: Int) -> Bool {
            guard offset >= 0, offset <= body.count else { return false }
            sent = offset
            return true
        }

        /// Appends response bytes; refuses (and so aborts the transfer) past the cap.
        func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
            guard response.count + bytes.count <= maxResponseBytes else {
                overflowed = true
                return false
            }
            response.append(contentsOf: bytes)
            return true
        }

        var errorMessage: String? {
            let text = String(cString: errorBuffer)
            return text.isEmpty ? nil : text
        }
    }

    /// The driver thread's loop: take queued work, sleep until a socket is ready, libcurl's timer is due or a
    /// wakeup comes, let libcurl act on that (`uplink_multi_events_run`), complete finished transfers.
    func runLoop() {
        var transfers: [UInt64: Transfer] = [:]
        var idleHandles: [UnsafeMutableRawPointer] = []
        // Outlives the multi handle: curl_multi_cleanup closes the cached connections through it.
        let sockets = UnsafeMutablePointer<uplink_socket_table>.allocate(capacity: 1)
        sockets.initialize(to: uplink_socket_table())
        defer { sockets.deallocate() }

        func finish(_ transfer: Transfer, with result: Result<HTTPResponse, any Error>) {
            transfers[transfer.id] = nil
            curl_multi_remove_handle(multi.pointer, transfer.easy)
            idleHandles.append(transfer.easy)
            transfer.continuation.resume(with: result)
        }

        var finished = false
        while true {
            let capacity = max(0, options.maxInFlight - transfers.count)
            let (jobs, cancelled, blockingJobs, executorJobs, stopping) = state.withLock { state in
                // Awake until it decides to sleep (below): work queued meanwhile is seen without a wakeup.
                state.wakeupPending = false
                state.loopAwake = true
                let jobs = Array(state.pending.prefix(capacity))
                state.pending.removeFirst(jobs.count)
                defer {
                    state.cancelled = []
                    state.blockingJobs = []
                    state.executorJobs = []
                }
                return (jobs, state.cancelled, state.blockingJobs, state.executorJobs, state.phase != .running)
            }

            for id in cancelled {
                if let transfer = transfers[id] {
                    finish(transfer, with: .failure(CancellationError()))
                }
            }
            for job in blockingJobs {
                job()
            }
            if stopping {
                for transfer in Array(transfers.values) {
                    finish(
                        transfer,
                        with: .failure(TransportFailure(kind: .shutdown, message: "the client was shut down"))
                    )
                }
                for job in jobs {
                    job.continuation.resume(
                        throwing: TransportFailure(kind: .shutdown, message: "the client was shut down")
                    )
                }
                for job in executorJobs {
                    globalConcurrentExecutor.enqueue(ExecutorJob(job))
                }
                break
            }
            for job in jobs {
                guard let easy = idleHandles.popLast() ?? curl_easy_init() else {
                    job.continuation.resume(
                        throwing: TransportFailure(kind: .other, message: "curl_easy_init failed")
                    )
                    continue
                }
                let transfer = Transfer(
                    job: job, easy: easy, maxResponseBytes: options.maxResponseBytes, sockets: sockets)
                if let problem = configure(transfer, job.request) {
                    idleHandles.append(easy)
                    transfer.continuation.resume(throwing: problem)
                    continue
                }
                let added = curl_multi_add_handle(multi.pointer, easy)
                guard added == CURLM_OK else {
                    idleHandles.append(easy)
                    transfer.continuation.resume(
                        throwing: TransportFailure(
                            kind: .other, message: String(cString: curl_multi_strerror(added)),
                            curlCode: Int(added.rawValue))
                    )
                    continue
                }
                transfers[transfer.id] = transfer
            }

            // Tasks run here (see `enqueue`): those resumed by the answers read in the last turn, which hand over
            // their next requests before the loop sleeps.
            for job in executorJobs {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
            // Sleeps only when nothing new is queued that it can act on; from then on, work queued needs a wakeup.
            let moreWork = state.withLock { state in
                let more = !state.executorJobs.isEmpty || !state.cancelled.isEmpty || !state.blockingJobs.isEmpty
                    || state.phase != .running || (!state.pending.isEmpty && transfers.count < options.maxInFlight)
                if !more { state.loopAwake = false }
                return more
            }
            // A finished transfer freed a slot for a queued request: look at the queue again without sleeping.
            // Otherwise the bound only limits how long the loop sleeps when nothing happens; wakeups end it early.
            _ = uplink_multi_events_run(events.pointer, multi.pointer, finished || moreWork ? 0 : 1000)
            // Resuming the answered tasks below queues their jobs here: no wakeup needed for those.
            state.withLock { $0.loopAwake = true }
            var remaining: Int32 = 0
            finished = false
            while let message = curl_multi_info_read(multi.pointer, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                var context: UnsafeMutableRawPointer?
                _ = uplink_curl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &context)
                guard let context else { continue }
                let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
                guard transfers[transfer.id] === transfer else { continue }
                finish(transfer, with: result(of: transfer, code: uplink_curl_msg_result(message)))
                finished = true
            }
        }

        // From `.stopped` on nobody wakes the loop (see `wakeThread`), so the handle can go: cleaning
        // it up closes the kept-alive connections now rather than whenever the driver is deinitialised (a
        // client may outlive its shutdown, held by a metrics reporter). Every easy handle was removed by
        // `finish`; they are cleaned up after the multi handle, as libcurl asks.
        let orphans = state.withLock { state in
            state.phase = .stopped
            state.multiCleanedUp = true
            defer { state.executorJobs = [] }
            return state.executorJobs
        }
        // Tasks that still prefer this driver go on running on the global executor (see `enqueue`).
        for job in orphans {
            globalConcurrentExecutor.enqueue(ExecutorJob(job))
        }
        curl_multi_cleanup(multi.pointer)
        uplink_multi_events_close(events.pointer)
        for handle in idleHandles {
            curl_easy_cleanup(handle)
        }
        // Jobs queued between the last take and `.stopped` would otherwise never run.
        let late = state.withLock { state in
            defer { state.blockingJobs = [] }
            return state.blockingJobs
        }
        for job in late {
            job()
        }
    }

    /// Sets every option of a transfer on a (possibly reused) easy handle; a description of the failure or nil.
    private func configure(_ transfer: Transfer, _ request: HTTPRequest) -> TransportFailure? {
        let easy = transfer.easy
        // Reset drops the previous request's options but keeps the connection and DNS caches.
        curl_easy_reset(easy)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        var codes: [CURLcode] = []
        codes.append(uplink_curl_easy_setopt_string(easy, CURLOPT_URL, request.url))
        codes.append(uplink_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        codes.append(uplink_curl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"))
        codes.append(uplink_curl_easy_setopt_long(easy, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2)))
        codes.append(uplink_curl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1))
        codes.append(uplink_curl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2))
        if let caFile = options.caFile {
            codes.append(uplink_curl_easy_setopt_string(easy, CURLOPT_CAINFO, caFile))
        }
        codes.append(
            uplink_curl_easy_setopt_long(
                easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, options.connectTimeout.clampedMilliseconds)))
        codes.append(
            uplink_curl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, max(1, options.requestTimeout.clampedMilliseconds)))
        codes.append(uplink_curl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1))
        codes.append(uplink_curl_easy_setopt_string(easy, CURLOPT_USERAGENT, options.userAgent))
        codes.append(uplink_curl_easy_setopt_long(easy, CURLOPT_POST, 1))
        codes.append(uplink_curl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
        codes.append(uplink_curl_easy_setopt_read_function(easy, curlReadCallback))
        codes.append(uplink_curl_easy_setopt_pointer(easy, CURLOPT_READDATA, context))
        codes.append(uplink_curl_easy_setopt_seek_function(easy, curlSeekCallback))
        codes.append(uplink_curl_easy_setopt_pointer(easy, CURLOPT_SEEKDATA, context))
        codes.append(uplink_curl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, transfer.headers))
        codes.append(uplink_curl_easy_setopt_write_function(easy, CURLOPT_WRITEFUNCTION, curlWriteCallback))
        codes.append(uplink_curl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context))
        codes.append(uplink_curl_easy_setopt_write_function(easy, CURLOPT_HEADERFUNCTION, curlHeaderCallback))
        codes.append(uplink_curl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context))
        codes.append(uplink_curl_easy_setopt_socket_table(easy, transfer.sockets))
        codes.append(uplink_curl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, context))
        codes.append(uplink_curl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, transfer.errorBuffer))
        if let failed = codes.first(where: { $0 != CURLE_OK }) {
            return TransportFailure(
                kind: .other, message: "curl_easy_setopt: " + String(cString: curl_easy_strerror(failed)),
                curlCode: Int(failed.rawValue))
        }
        return nil
    }

    /// The response of a finished transfer, or why there is none.
    private func result(of transfer: Transfer, code: CURLcode) -> Result<HTTPResponse, any Error> {
        guard code == CURLE_OK else {
            let message = transfer.errorMessage ?? String(cString: curl_easy_strerror(code))
            if transfer.overflowed {
                return .failure(
                    TransportFailure(
                        kind: .responseTooLarge,
                        message: "the response body exceeds \(transfer.maxResponseBytes) bytes",
                        curlCode: Int(code.rawValue)))
            }
            return .failure(
                TransportFailure(kind: Self.kind(of: code), message: message, curlCode: Int(code.rawValue)))
        }
        var status = 0
        _ = uplink_curl_easy_getinfo_long(transfer.easy, CURLINFO_RESPONSE_CODE, &status)
        return .success(
            HTTPResponse(status: status, body: transfer.response, latency: ContinuousClock.now - transfer.started))
    }

    static func kind(of code: CURLcode) -> TransportFailure.Kind {
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return .timeout
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .connect
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
            return .connectionReset
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
            CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_CRL_BADFILE,
            CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS:
            return .tls
        default:
            return .other
        }
    }
}

/// libcurl's write callback: appends to the transfer's bounded buffer. Returning less than it was given makes
/// libcurl abort the transfer with CURLE_WRITE_ERROR, which is how an oversized answer is cut off.
private func curlWriteCallback(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    guard let context else { return 0 }
    let total = size * count
    guard total > 0, let data else { return total }
    let transfer = Unmanaged<CurlDriver.Transfer>.fromOpaque(context).takeUnretainedValue()
    return transfer.receive(UnsafeRawBufferPointer(start: data, count: total)) ? total : 0
}

/// libcurl's header callback: on an answer's status line, asks for an immediate ACK on its socket (see
/// `uplink_socket_table` in the CCurl shim), so a server that sends the body separately is not held up by a
/// delayed ACK. The header lines themselves are not needed.
private func curlHeaderCallback(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    let total = size * count
    guard let context, let data, total >= 5, data[0] == CChar(UInt8(ascii: "H")) else { return total }
    let transfer = Unmanaged<CurlDriver.Transfer>.fromOpaque(context).takeUnretainedValue()
    var port = 0
    if uplink_curl_easy_getinfo_long(transfer.easy, CURLINFO_LOCAL_PORT, &port) == CURLE_OK {
        uplink_socket_table_quickack(transfer.sockets, port)
    }
    return total
}

/// libcurl's read callback: the next piece of the request body, straight from the transfer's bytes.
private func curlReadCallback(
    _ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    guard let context, let buffer else { return Int(CURL_READFUNC_ABORT) }
    let transfer = Unmanaged<CurlDriver.Transfer>.fromOpaque(context).takeUnretainedValue()
    return transfer.read(into: UnsafeMutableRawPointer(buffer), capacity: size * count)
}

/// libcurl's seek callback: rewinds the body when a request is sent again.
private func curlSeekCallback(_ context: UnsafeMutableRawPointer?, _ offset: curl_off_t, _ origin: Int32) -> Int32 {
    guard let context, origin == SEEK_SET else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
    let transfer = Unmanaged<CurlDriver.Transfer>.fromOpaque(context).takeUnretainedValue()
    return transfer.seek(to: Int(offset)) ? Int32(CURL_SEEKFUNC_OK) : Int32(CURL_SEEKFUNC_FAIL)
}
