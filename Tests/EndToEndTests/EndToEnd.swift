import Testing

/// Every end-to-end suite is nested here, so they run one test at a time even when `swift test` runs suites in
/// parallel. Their tests wait for real processes synchronously, each holding one of the cooperative pool's
/// threads (one per core): several at once starved the unit tests that run alongside (timing out the exec and
/// serial sources' waits). Serialised, one thread is left for everything else.
@Suite(.serialized) enum EndToEnd {}
