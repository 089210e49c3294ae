// The shim's own check (scripts/sanitizers.sh runs it under ThreadSanitizer before the tests): two threads
// contend for one `Mutex`, so its slow paths run thousands of times. Without scripts/sanitizers/tsan-mutex.c
// ThreadSanitizer reports a data race here on every run (a false positive); with it, none.
import Foundation
import Synchronization

final class Shared: Sendable { let values = Mutex<[Int]>([]) }
let shared = Shared()
let writers = (0..<2).map { writer in
    Thread {
        for value in 0..<100_000 { shared.values.withLock { $0.append(writer * 100_000 + value) } }
    }
}
writers.forEach { $0.start() }
for _ in 0..<60_000 where shared.values.withLock({ $0.count }) < 200_000 { usleep(1000) }
let count = shared.values.withLock { $0.count }
print("mutex contention: \(count) appends")
exit(count == 200_000 ? 0 : 1)
