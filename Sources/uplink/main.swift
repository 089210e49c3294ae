import UplinkCLI
import UplinkPlugins

await UplinkCLI.main(registry: Builtins.registry)
