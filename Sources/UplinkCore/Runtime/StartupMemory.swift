import CUplinkLinux

#if canImport(Glibc)
import Glibc
#endif

/// The memory start-up needs once and the running pipeline does not.
///
/// Parsing arguments and YAML, checking the configuration and building the components run a large share of
/// the binary's code exactly once, and the kernel keeps every page of it mapped in the process (plus the
/// 64 KiB around each fault) for its whole life: about two thirds of an idle agent's RSS. Once a pipeline has
/// started, ``release()`` unmaps the read-only pages of every loaded object and trims malloc's free pages;
/// the code the steady state runs faults back in from the page cache on its next use, so what stays resident
/// is what the agent really uses. bench/RESULTS.md has the figures.
public enum StartupMemory {
    /// Set `UPLINK_KEEP_STARTUP_PAGES=1` to skip the release (to compare, or when debugging with breakpoints
    /// set in memory).
    public static var isEnabled: Bool {
        guard let value = getenv("UPLINK_KEEP_STARTUP_PAGES") else { return true }
        return String(cString: value) != "1"
    }

    /// Releases now, and once more after `settling`: the components run their own start-up (opening files,
    /// TLS, the first token) after the pipeline has started, and what that touched once goes back too. Measured
    /// on an idle file tail: 26.4 MiB RSS without, 17.1 MiB after the first release, 12.7 MiB after the second.
    public static func releaseAfterStart(settling: Duration = .seconds(3)) {
        guard isEnabled else { return }
        release()
        Task.detached {
            try? await Task.sleep(for: settling)
            release()
        }
    }

    /// Unmaps read-only pages of loaded objects and returns free heap pages; the bytes of address range
    /// released, or nil when turned off.
    @discardableResult
    public static func release() -> Int? {
        guard isEnabled else { return nil }
        return uplink_release_startup_pages()
    }
}
