import UplinkCore
import UplinkYAML

/// `unit_convert`: converts numeric fields of records between units, for example a sensor's celsius to the
/// fahrenheit a dashboard expects, or pascals to kilopascals.
///
/// ```yaml
/// transforms:
///   units:
///     type: unit_convert
///     inputs: [parse]
///     decimals: 2
///     conversions:
///       - { field: temp, from: celsius, to: fahrenheit }                  # in place
///       - { field: pressure, from: pa, to: kpa, target: pressure_kpa }    # into a new field
/// ```
///
/// Options: `conversions` (list, required): `field`, `from`, `to` (units: celsius, fahrenheit, kelvin, pa,
/// hpa, kpa, bar, psi, mm, cm, m, km, in, ft, mi, g, kg, lb), `target` (default: `field`); `decimals`
/// (integer 0-12, default: not rounded). A record without the field, or with a non-numeric value, passes
/// unchanged and is counted.
public struct UnitConvert: ChunkTransform {
    public typealias Input = Record
    public typealias Output = Record

    /// One conversion, read and checked from the config.
    public struct Conversion: Sendable, Hashable {
        public var field: String
        public var from: Unit
        public var to: Unit
        public var target: String

        public init(field: String, from: Unit, to: Unit, target: String? = nil) {
            self.field = field
            self.from = from
            self.to = to
            self.target = target ?? field
        }
    }

    public var conversions: [Conversion]
    /// Digits after the decimal point, or nil to keep full precision.
    public var decimals: Int?

    public init(conversions: [Conversion], decimals: Int? = nil) {
        self.conversions = conversions
        self.decimals = decimals
    }

    static let conversionOptions: [OptionSpec] = [
        OptionSpec("field", .string, required: true, "the numeric field to convert"),
        OptionSpec("from", .enumeration(Unit.all.keys.sorted()), required: true, "its unit"),
        OptionSpec("to", .enumeration(Unit.all.keys.sorted()), required: true, "the unit to convert to"),
        OptionSpec("target", .string, default: "the field", "where to write the result"),
    ]

    /// The registry entry: one line in a custom `uplink` binary registers it
    /// (`UplinkCLI.main(adding: [UnitConvert.descriptor])`).
    public static let descriptor = PluginDescriptor(
        type: "unit_convert", role: .transform,
        summary: "Converts numeric fields between units (temperature, pressure, length, mass).",
        options: [
            OptionSpec(
                "conversions", .any, required: true,
                "a list of { field, from, to, target } (units: \(Unit.all.keys.sorted().joined(separator: ", ")))"),
            OptionSpec("decimals", .int, "round results to this many digits after the point"),
        ],
        accepts: [.record], output: .kind(.record), origin: "package swift-unit-converter"
    ) { context in
        let config = context.config
        var conversions: [Conversion] = []
        if let list = config.value("conversions") {
            if let items = list.sequence {
                for item in items {
                    if let conversion = readConversion(item, config: config) { conversions.append(conversion) }
                }
            } else {
                config.error("option 'conversions' must be a list of { field, from, to }", at: "conversions")
            }
        }
        let decimals = config.int("decimals", range: 0...12)
        return .transform(UnitConvert(conversions: conversions, decimals: decimals))
    }

    /// Reads one `{ field, from, to, target }` with located errors (unknown keys and units get a "did you
    /// mean"), and refuses converting between dimensions.
    static func readConversion(_ node: YAMLNode, config: ConfigReader) -> Conversion? {
        guard node.mapping != nil else {
            config.diagnostics.error(
                "each conversion must be a mapping like { field: temp, from: celsius, to: fahrenheit }",
                file: config.file, at: node.mark)
            return nil
        }
        let reader = ConfigReader(
            node: node, file: config.file, options: conversionOptions, diagnostics: config.diagnostics,
            prefix: "conversions[].")
        reader.finish()
        guard let field = reader.string("field"), let fromName = reader.string("from"), let toName = reader.string("to")
        else { return nil }
        var units: [Unit] = []
        for (key, name) in [("from", fromName), ("to", toName)] {
            guard let unit = Unit.all[name] else {
                var message = "unknown unit '\(name)'"
                if let hint = ValueParsing.suggestion(for: name, among: Unit.all.keys) {
                    message += "; did you mean '\(hint)'?"
                }
                reader.error(message, at: key)
                return nil
            }
            units.append(unit)
        }
        guard units[0].dimension == units[1].dimension else {
            reader.error(
                "cannot convert \(fromName) (\(units[0].dimension.rawValue)) to \(toName) (\(units[1].dimension.rawValue))",
                at: "to")
            return nil
        }
        return Conversion(field: field, from: units[0], to: units[1], target: reader.string("target"))
    }

    public func transform(_ events: [Record], context: ComponentContext) -> [Record] {
        var skipped = 0
        let converted = events.map { record -> Record in
            var record = record
            for conversion in conversions {
                let value: Double
                switch record.fields[conversion.field] {
                case .int(let number)?: value = Double(number)
                case .double(let number)?: value = number
                default:
                    skipped += 1
                    continue
                }
                var result = conversion.from.convert(value, to: conversion.to)
                if let decimals {
                    var factor = 1.0
                    for _ in 0..<decimals { factor *= 10 }
                    result = (result * factor).rounded() / factor
                }
                record.fields[conversion.target] = .double(result)
            }
            return record
        }
        if skipped > 0 { context.metrics.error(skipped) }
        return converted
    }
}
