import FoundationEssentials
import Synchronization
import Testing
import UplinkFileSystem
import UplinkFileSystemTesting

@testable import IoTCore

/// The token cache under power cuts: every state a crash can leave while a new token replaces the cached one
/// (each prefix of the unsynced writes, a torn last write) loads the old token or the new one, never garbage
/// and never nothing.
@Suite("Token store crash states")
struct IoTCoreTokenStoreCrashTests {
    final class Captured: Sendable {
        let states = Mutex<[SimulatedFileSystem.Snapshot]>([])
    }

    @Test("a crash while a token is saved leaves the old or the new token")
    func crashWhileSaving() throws {
        let fileSystem = SimulatedFileSystem()
        let store = TokenStore(directory: "/device/state/cloud", credentials: Fixtures.credentials, fileSystem: fileSystem)
        let old = IoTCoreTokenStoreTests.token()
        try store.save(old, endpoint: IoTCoreTokenStoreTests.endpoint)
        var new = old
        new.value = Secret("other.token.value")

        let captured = Captured()
        fileSystem.observeEachStep { captured.states.withLock { $0 += fileSystem.crashStates() } }
        try store.save(new, endpoint: IoTCoreTokenStoreTests.endpoint)
        fileSystem.observeEachStep(nil)
        let states = captured.states.withLock { $0 } + fileSystem.crashStates()

        var seen = Set<String>()
        for state in states {
            let restarted = TokenStore(
                directory: "/device/state/cloud", credentials: Fixtures.credentials,
                fileSystem: SimulatedFileSystem(booting: state))
            let loaded = try restarted.load(endpoint: IoTCoreTokenStoreTests.endpoint).get()
            #expect(loaded == old || loaded == new)
            seen.insert(loaded == old ? "old" : "new")
        }
        print("token cache: \(states.count) crash states checked, each loads the old or the new token")
        #expect(seen == ["old", "new"], "both outcomes are reachable, so the states are not all alike")
    }
}
