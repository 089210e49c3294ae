/// When `/auth` carries `Timestamp`.
///
/// With a Timestamp the service refuses the request (100070) unless it is within 3600 s of its own clock, so a
/// captured `/auth` request (its signature covers the Timestamp) cannot be replayed later. Without one the
/// signature never changes. Boards often boot with a wrong clock, though, so by default the Timestamp is sent
/// only while the kernel reports the clock as synchronised (NTP and the like) and its year is plausible; and
/// after a 100070 the client stops sending it for good (it logs a warning once).
public enum AuthTimestamp: String, Sendable, Hashable, CaseIterable {
    /// Never send it (the SDK's behaviour).
    case never
    /// Send it when the clock is known to be synchronised.
    case whenSynchronised = "auto"
    /// Always send it.
    case always
}
