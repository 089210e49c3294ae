import UnitConverter
import UplinkCLI

// The whole binary: Uplink's commands (run, validate, plugins, graph, ...) with one more plugin.
await UplinkCLI.main(adding: [UnitConvert.descriptor])
