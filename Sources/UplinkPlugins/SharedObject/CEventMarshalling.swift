internal import CUplinkPlugin
import UplinkCore

/// Events to and from the C ABI's `uplink_event` arrays.
///
/// To C: every string and byte buffer of a batch goes into one arena (NUL-terminated, so plugins may use
/// them as C strings), and the structs point into it; one allocation per batch, nothing per event. The
/// pointers are valid only inside ``withCEvents(_:_:)``'s closure, which is the C ABI's promise.
enum CEventMarshalling {
    private struct FieldPlan {
        var name: Int
        var type: UInt32
        var integer: Int64 = 0
        var number: Double = 0
        var string: Int = -1
        var stringLength: Int = 0
    }

    private struct EventPlan {
        var kind: UInt32
        var timestamp: Int64
        var data: Int = -1
        var length: Int = 0
        var topic: Int = -1
        var firstField: Int = 0
        var fieldCount: Int = 0
    }

    static func withCEvents<E: Event, R>(
        _ events: ArraySlice<E>, _ body: (UnsafePointer<uplink_event>?, Int) -> R
    ) -> R {
        var arena: [UInt8] = []
        var fieldPlans: [FieldPlan] = []
        var eventPlans: [EventPlan] = []
        eventPlans.reserveCapacity(events.count)

        func store(_ bytes: some Collection<UInt8>) -> Int {
            let offset = arena.count
            arena.append(contentsOf: bytes)
            arena.append(0)
            return offset
        }

        for event in events {
            switch event {
            case let record as Record:
                var plan = EventPlan(kind: UInt32(UPLINK_KIND_RECORD), timestamp: record.timestamp)
                plan.firstField = fieldPlans.count
                for field in record.fields {
                    var fieldPlan = FieldPlan(name: store(field.name.utf8), type: UInt32(UPLINK_VALUE_NULL))
                    switch field.value {
                    case .null: break
                    case .bool(let flag):
                        fieldPlan.type = UInt32(UPLINK_VALUE_BOOL)
                        fieldPlan.integer = flag ? 1 : 0
                    case .int(let number):
                        fieldPlan.type = UInt32(UPLINK_VALUE_INT)
                        fieldPlan.integer = number
                    case .double(let number):
                        fieldPlan.type = UInt32(UPLINK_VALUE_FLOAT)
                        fieldPlan.number = number
                    case .string(let text):
                        fieldPlan.type = UInt32(UPLINK_VALUE_STRING)
                        fieldPlan.stringLength = text.utf8.count
                        fieldPlan.string = store(text.utf8)
                    case .array, .object:
                        let json = Array(field.value.jsonText.utf8)
                        fieldPlan.type = UInt32(UPLINK_VALUE_JSON)
                        fieldPlan.stringLength = json.count
                        fieldPlan.string = store(json)
                    }
                    fieldPlans.append(fieldPlan)
                }
                plan.fieldCount = fieldPlans.count - plan.firstField
                eventPlans.append(plan)
            case let raw as RawEvent:
                var plan = EventPlan(kind: UInt32(UPLINK_KIND_RAW), timestamp: raw.timestamp)
                plan.length = raw.bytes.count
                plan.data = store(raw.bytes)
                eventPlans.append(plan)
            case let message as Message:
                var plan = EventPlan(kind: UInt32(UPLINK_KIND_MESSAGE), timestamp: currentTimeMillis())
                plan.length = message.body.count
                plan.data = store(message.body)
                if let topic = message.topic { plan.topic = store(topic.utf8) }
                eventPlans.append(plan)
            default:
                // Every kind is listed above; a new kind must be added here before it can reach a plugin.
                var text: [UInt8] = []
                event.appendText(to: &text)
                var plan = EventPlan(kind: UInt32(UPLINK_KIND_RAW), timestamp: currentTimeMillis())
                plan.length = text.count
                plan.data = store(text)
                eventPlans.append(plan)
            }
        }

        return arena.withUnsafeBufferPointer { arenaBuffer in
            let base = arenaBuffer.baseAddress
            func pointer(_ offset: Int) -> UnsafePointer<UInt8>? { offset < 0 ? nil : base.map { $0 + offset } }
            func text(_ offset: Int) -> UnsafePointer<CChar>? {
                pointer(offset).map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
            }
            let fields = fieldPlans.map { plan in
                uplink_field(
                    name: text(plan.name), type: plan.type, integer: plan.integer, number: plan.number,
                    string: text(plan.string), string_length: plan.stringLength)
            }
            return fields.withUnsafeBufferPointer { fieldBuffer in
                let cEvents = eventPlans.map { plan in
                    uplink_event(
                        kind: plan.kind, timestamp_ms: plan.timestamp, data: pointer(plan.data), length: plan.length,
                        topic: text(plan.topic),
                        fields: plan.fieldCount == 0 ? nil : fieldBuffer.baseAddress.map { $0 + plan.firstField },
                        field_count: plan.fieldCount)
                }
                return cEvents.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
            }
        }
    }

    /// Turns an emitted `uplink_event` into an event of `kind`; nil when it is not a valid one.
    static func event(
        from event: uplink_event, kind: EventKind, origin: EventOrigin, defaultTimestamp: Int64
    ) -> (any Event)? {
        guard LoadedLibrary.kind(event.kind) == kind else { return nil }
        let timestamp = event.timestamp_ms != 0 ? event.timestamp_ms : defaultTimestamp
        switch kind {
        case .raw:
            return RawEvent(bytes: bytes(event.data, event.length)[...], origin: origin, timestamp: timestamp)
        case .message:
            let topic = event.topic.map { String(cString: $0) }
            return Message(topic: topic, body: bytes(event.data, event.length))
        case .record:
            var fields = Fields()
            fields.reserveCapacity(event.field_count)
            for index in 0..<event.field_count {
                guard let field = event.fields?[index], let name = field.name else { return nil }
                let value: Value
                switch field.type {
                case UInt32(UPLINK_VALUE_NULL): value = .null
                case UInt32(UPLINK_VALUE_BOOL): value = .bool(field.integer != 0)
                case UInt32(UPLINK_VALUE_INT): value = .int(field.integer)
                case UInt32(UPLINK_VALUE_FLOAT):
                    guard field.number.isFinite else { return nil }
                    value = .double(field.number)
                case UInt32(UPLINK_VALUE_STRING):
                    guard let text = String(validating: bytes(field.string, field.string_length), as: UTF8.self) else {
                        return nil
                    }
                    value = .string(text)
                case UInt32(UPLINK_VALUE_JSON):
                    guard let parsed = try? JSONReader.parse(bytes(field.string, field.string_length)) else {
                        return nil
                    }
                    value = parsed
                default:
                    return nil
                }
                fields.append(String(cString: name), value)
            }
            return Record(fields: fields, origin: origin, timestamp: timestamp)
        }
    }

    private static func bytes(_ pointer: UnsafePointer<UInt8>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    private static func bytes(_ pointer: UnsafePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return UnsafeRawPointer(pointer).withMemoryRebound(to: UInt8.self, capacity: count) {
            Array(UnsafeBufferPointer(start: $0, count: count))
        }
    }
}

/// Collects what a plugin emits during one call; the C callback reaches it through `context`.
final class EmittedEvents {
    let kind: EventKind
    let origin: EventOrigin
    let defaultTimestamp: Int64
    var events: [any Event] = []
    var invalid = 0

    init(kind: EventKind, origin: EventOrigin, defaultTimestamp: Int64) {
        self.kind = kind
        self.origin = origin
        self.defaultTimestamp = defaultTimestamp
    }

    /// Calls `body` with an emitter that appends here.
    func withEmitter<R>(_ body: (UnsafePointer<uplink_emitter>) -> R) -> R {
        var emitter = uplink_emitter(
            context: Unmanaged.passUnretained(self).toOpaque(),
            emit: { context, event in
                guard let context, let event else { return Int32(UPLINK_ERROR) }
                let collector = Unmanaged<EmittedEvents>.fromOpaque(context).takeUnretainedValue()
                guard
                    let converted = CEventMarshalling.event(
                        from: event.pointee, kind: collector.kind, origin: collector.origin,
                        defaultTimestamp: collector.defaultTimestamp)
                else {
                    collector.invalid += 1
                    return Int32(UPLINK_ERROR)
                }
                collector.events.append(converted)
                return Int32(UPLINK_OK)
            })
        return withExtendedLifetime(self) { withUnsafePointer(to: &emitter) { body($0) } }
    }
}
