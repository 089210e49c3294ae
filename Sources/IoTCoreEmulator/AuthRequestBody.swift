#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The body of `POST /auth`: `{"ProductSN":"…","DeviceSN":"…"[,"Timestamp":…]}`.
struct AuthRequestBody: Decodable, Sendable {
    /// `Timestamp` as sent: the vendor's sample has a numeric string, an int64 is as plausible.
    enum Timestamp: Sendable {
        case number(Double)
        case text(String)
    }

    var productSN: String
    var deviceSN: String
    var timestamp: Timestamp?

    enum CodingKeys: String, CodingKey {
        case productSN = "ProductSN"
        case deviceSN = "DeviceSN"
        case timestamp = "Timestamp"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.productSN = try container.decode(String.self, forKey: .productSN)
        self.deviceSN = try container.decode(String.self, forKey: .deviceSN)
        if try !container.contains(.timestamp) || container.decodeNil(forKey: .timestamp) {
            self.timestamp = nil
        } else if let integer = try? container.decode(Int64.self, forKey: .timestamp) {
            self.timestamp = .number(Double(integer))
        } else if let number = try? container.decode(Double.self, forKey: .timestamp) {
            self.timestamp = .number(number)
        } else {
            // Anything else (a string, or even an object) is a timestamp error, not a parameter error.
            self.timestamp = .text((try? container.decode(String.self, forKey: .timestamp)) ?? "")
        }
    }

    /// The timestamp in Unix seconds; 13-digit values are taken as milliseconds. `nil` when not a number.
    static func seconds(of timestamp: Timestamp) -> Double? {
        let value: Double
        switch timestamp {
        case .number(let number): value = number
        case .text(let text):
            let trimmed = text.trimmingASCIIWhitespace()
            guard let number = Int64(trimmed).map(Double.init) ?? Double(trimmed) else { return nil }
            value = number
        }
        guard value.isFinite else { return nil }
        // 1e11 s is the year 5138, while 1e11 ms is 1973: any larger value is in milliseconds.
        return abs(value) >= 1e11 ? value / 1000 : value
    }
}
