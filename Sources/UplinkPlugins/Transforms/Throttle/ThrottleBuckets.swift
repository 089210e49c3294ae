import UplinkCore

/// The token buckets of `throttle`, one per `group_by` key, with time passed in (Unix ms).
///
/// A bucket holds at most one period's budget (`100/s` allows a burst of 100, then 100 a second). A record
/// costs 1 (events) or its size (bytes); one larger than a whole period's budget passes when the bucket is
/// full and empties it, so it is slowed, never stuck. Past `max_groups` keys, the records of new keys share one
/// overflow bucket: still throttled, and counted.
struct ThrottleBuckets: Sendable {
    /// `amount` per `periodMilliseconds`.
    struct Rate: Sendable, Equatable {
        var amount: Double
        var periodMilliseconds: Int64

        init(amount: Double, periodMilliseconds: Int64) {
            self.amount = amount
            self.periodMilliseconds = periodMilliseconds
        }

        /// `100/s`, `64KiB/min`, `5/10s` (`/s`, `/sec`, `/m`, `/min`, `/h`, `/hour`, `/d`, `/day`, or a
        /// duration); `sizes` reads the amount as a size (`64KiB`). nil when malformed, zero or negative.
        init?(_ text: String, sizes: Bool) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            let amountText = String(parts[0]).trimmingSpaces, periodText = String(parts[1]).trimmingSpaces
            let amount: Double?
            if sizes {
                amount = ValueParsing.size(amountText).map(Double.init)
            } else {
                amount = Int(amountText).map(Double.init)
            }
            let words: [String: Int64] = [
                "s": 1_000, "sec": 1_000, "second": 1_000, "m": 60_000, "min": 60_000, "minute": 60_000,
                "h": 3_600_000, "hour": 3_600_000, "d": 86_400_000, "day": 86_400_000,
            ]
            var period = words[periodText]
            if period == nil, let duration = ValueParsing.duration(periodText) { period = duration.milliseconds }
            guard let amount, amount >= 1, let period, period >= 1, period <= 86_400_000 else { return nil }
            self.amount = amount
            self.periodMilliseconds = period
        }
    }

    enum Decision: Equatable {
        case pass
        /// Over the rate: enough budget returns in this many milliseconds.
        case exceeded(waitMilliseconds: Int64)
    }

    private struct Bucket {
        var tokens: Double
        var updated: Int64
    }

    let rate: Rate
    let groups: GroupKeys
    private var buckets: [GroupKeys.Key: Bucket] = [:]
    private var overflow: Bucket?

    init(rate: Rate, groups: GroupKeys) {
        self.rate = rate
        self.groups = groups
    }

    /// Takes `cost` from the key's bucket when it holds enough. `overLimit` is set when the key was new past
    /// `max_groups` and the overflow bucket was used.
    mutating func take(_ cost: Int, key: GroupKeys.Key, now: Int64, overLimit: inout Bool) -> Decision {
        let fresh = Bucket(tokens: rate.amount, updated: now)
        if var bucket = buckets[key] {
            let decision = take(cost, from: &bucket, now: now)
            buckets[key] = bucket
            return decision
        }
        if buckets.count < groups.maxGroups {
            var bucket = fresh
            let decision = take(cost, from: &bucket, now: now)
            buckets[key] = bucket
            return decision
        }
        overLimit = true
        var bucket = overflow ?? fresh
        let decision = take(cost, from: &bucket, now: now)
        overflow = bucket
        return decision
    }

    private func take(_ cost: Int, from bucket: inout Bucket, now: Int64) -> Decision {
        let perMillisecond = rate.amount / Double(rate.periodMilliseconds)
        if now > bucket.updated {
            bucket.tokens = min(rate.amount, bucket.tokens + Double(now - bucket.updated) * perMillisecond)
            bucket.updated = now
        }
        let needed = min(Double(cost), rate.amount)
        if bucket.tokens >= needed {
            bucket.tokens -= needed
            return .pass
        }
        // Less a hair, so that floating-point residue never rounds a whole millisecond up.
        let wait = ((needed - bucket.tokens) / perMillisecond - 1e-6).rounded(.up)
        return .exceeded(waitMilliseconds: max(1, Int64(wait)))
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
