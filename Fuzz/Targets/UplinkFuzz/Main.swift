#if canImport(Glibc)
import Glibc
#endif

/// The fuzz targets, by the name scripts/fuzz.sh gives them (Corpus/<name>, Regressions/<name>, fuzz-<name>).
let targets: [String: @Sendable (UnsafeBufferPointer<UInt8>) -> Void] = [
    "config": ConfigFuzz.run,
    "json": JSONFuzz.run,
    "csv": CSVFuzz.run,
    "kv": KeyValueFuzz.run,
    "regex": RegexFuzz.run,
    "lineframer": LineFramerFuzz.run,
    "process": ProcessProtocolFuzz.run,
    "diskbuffer": DiskBufferFuzz.run,
    "checkpoint": CheckpointFuzz.run,
    "tokencache": TokenCacheFuzz.run,
    "serveranswer": ServerAnswerFuzz.run,
    "expression": ExpressionFuzz.run,
]

nonisolated(unsafe) var selected: (@Sendable (UnsafeBufferPointer<UInt8>) -> Void)?

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// libFuzzer's driver with the target chosen by the binary's name (`fuzz-json` runs `json`) or, for the plain
/// binary, by UPLINK_FUZZ_TARGET. SwiftPM names an executable's entry point `<module>_main`; -parse-as-library
/// leaves it to this function.
@_cdecl("UplinkFuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let program = argv?[0].map { String(cString: $0) } ?? ""
    let base = program.split(separator: "/").last.map(String.init) ?? program
    var name = base.hasPrefix("fuzz-") ? String(base.dropFirst(5)) : ""
    if name.isEmpty, let variable = getenv("UPLINK_FUZZ_TARGET") { name = String(cString: variable) }
    guard let target = targets[name] else {
        let names = targets.keys.sorted().joined(separator: " ")
        printError("usage: fuzz-<target> [libFuzzer options] (or UPLINK_FUZZ_TARGET=<target>); targets: \(names)")
        return 2
    }
    selected = target
    var argc = argc
    var argv = argv
    return runDriver(&argc, &argv) { data, size in
        selected!(UnsafeBufferPointer(start: size == 0 ? nil : data, count: size))
        return 0
    }
}
