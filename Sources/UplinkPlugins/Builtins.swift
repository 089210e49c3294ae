import UplinkCore

/// Every built-in plugin, in one explicit list (as Fluent Bit's plugins/CMakeLists.txt). A custom `uplink`
/// binary starts from this registry and adds its own with `registry.register(...)`.
public enum Builtins {
    public static var descriptors: [PluginDescriptor] {
        [
            StdinSource.descriptor,
            FileTailSource.descriptor,
            SerialSource.descriptor,
            ExecSource.descriptor,
            JSONTransform.descriptor,
            ThingModelTransform.descriptor,
            ShadowTransform.descriptor,
            DeadbandTransform.descriptor,
            AggregateTransform.descriptor,
            ThrottleTransform<Record>.descriptor,
            BatchTransform<Message>.descriptor,
            FilterTransform<Record>.descriptor,
            RouteTransform<Record>.descriptor,
            RemapTransform.descriptor,
            StdoutSink<RawEvent>.descriptor,
            FileSink<RawEvent>.descriptor,
            IoTCoreSink<Message>.descriptor,
            ProcessSource<Record>.descriptor,
            ProcessTransform<Record, Record>.descriptor,
            ProcessSink<Record>.descriptor,
        ]
    }

    public static var registry: PluginRegistry { PluginRegistry(descriptors) }
}
