/// A unit of measurement the transform converts between. Each is an affine map to its dimension's base unit
/// (kelvin, pascal, metre, kilogram): `base = value * scale + offset`.
public struct Unit: Sendable, Hashable {
    public enum Dimension: String, Sendable {
        case temperature, pressure, length, mass
    }

    public var name: String
    public var dimension: Dimension
    public var scale: Double
    public var offset: Double

    public init(_ name: String, _ dimension: Dimension, scale: Double, offset: Double = 0) {
        self.name = name
        self.dimension = dimension
        self.scale = scale
        self.offset = offset
    }

    /// Every unit by the name users write.
    public static let all: [String: Unit] = {
        let units = [
            Unit("celsius", .temperature, scale: 1, offset: 273.15),
            Unit("fahrenheit", .temperature, scale: 5.0 / 9.0, offset: 273.15 - 32 * 5.0 / 9.0),
            Unit("kelvin", .temperature, scale: 1),
            Unit("pa", .pressure, scale: 1),
            Unit("hpa", .pressure, scale: 100),
            Unit("kpa", .pressure, scale: 1000),
            Unit("bar", .pressure, scale: 100_000),
            Unit("psi", .pressure, scale: 6894.757293168),
            Unit("mm", .length, scale: 0.001),
            Unit("cm", .length, scale: 0.01),
            Unit("m", .length, scale: 1),
            Unit("km", .length, scale: 1000),
            Unit("in", .length, scale: 0.0254),
            Unit("ft", .length, scale: 0.3048),
            Unit("mi", .length, scale: 1609.344),
            Unit("g", .mass, scale: 0.001),
            Unit("kg", .mass, scale: 1),
            Unit("lb", .mass, scale: 0.45359237),
        ]
        return Dictionary(uniqueKeysWithValues: units.map { ($0.name, $0) })
    }()

    /// Converts `value` from this unit to `other` (same dimension).
    public func convert(_ value: Double, to other: Unit) -> Double {
        (value * scale + offset - other.offset) / other.scale
    }
}
