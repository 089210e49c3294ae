import UplinkCore

/// Where `remap`'s operations act in records of the shapes seen last: records of one source mostly carry the same
/// field names in the same order, and for all of them each operation finds its field at the same position. Worked
/// out once per shape, that spares each record the lookups by name (a string comparison per field and operation) and
/// the general rename's pass over every field; a record is checked against a shape with ``Fields/hasNames(_:)``,
/// which costs a few word comparisons when the names are the same strings, as a `json` stage's are.
///
/// A plan only says where: the values still come from evaluating each `set`'s expression on the record as the
/// operations before it left it. Positions depend on names alone, so a record with the plan's names gets exactly
/// what the operations by name would do, except where a `set` fails and `on_error: keep` leaves a new field unset:
/// from there on the record takes the general path (``RemapTransform/apply(_:to:original:failures:byteDelta:)``).
///
/// Bounded: at most ``capacity`` plans are kept (each holds one record's names), and building one costs a pass of
/// the operations over the names. Records whose shapes keep changing (json lines with varying keys) would build a
/// plan per record for nothing: when a plan is dropped before it ever served a second record, plans are not built
/// for the next ``cooldown`` misses, a number that doubles each time that happens again (up to
/// ``maximumCooldown``) and starts again from one once a dropped plan had served.
struct RemapPlans {
    /// What the operations do to records with some names; its names and steps are laid out in ``RemapPlans/names``
    /// and ``RemapPlans/steps``, so that checking a record and reading the steps takes no reference count per record.
    struct Plan {
        let names: Range<Int>
        /// Nil when the operations do something a plan does not describe for these names (a rename onto a name the
        /// record has, or of a name it has twice): such records take the general path.
        let steps: Range<Int>?
        /// Records it served, the one it was built for included.
        var served = 1
    }

    /// One operation at the position where it acts, for one shape of record. Operations that do nothing to that
    /// shape (a rename or remove of a name it does not have) have no step. Plain numbers, so that reading one per
    /// record takes no reference count: the name and expression are the operation's (``RemapTransform/targets``).
    struct Step {
        enum Kind: UInt8 {
            /// The value replaces the field at `position`, or is appended when `position` is -1.
            case set
            /// A rename of the only field at `position` with its name, to a name no field has.
            case rename
            case remove
        }

        let kind: Kind
        /// Its index in the operations.
        let operation: Int
        let position: Int
    }

    static let capacity = 4
    static let maximumCooldown = 1024

    private(set) var plans: [Plan] = []
    /// Every plan's names, then every plan's steps, one plan's after another's.
    private(set) var names: [String] = []
    private(set) var steps: [Step] = []
    /// Each plan's names and steps as worked out, to lay them out again when a plan is replaced.
    private var worked: [(names: [String], steps: [Step]?)] = []
    /// Misses left that take the general path without building a plan.
    private(set) var cooldown = 0
    private var nextCooldown = 1

    /// The names of each plan's records.
    var shapes: [[String]] { plans.map { Array(names[$0.names]) } }

    /// Where the steps for `fields` are in ``steps``, from a plan of its shape kept or built now; nil when the general
    /// path must apply the operations (a shape the plans do not describe, or a miss during a cooldown).
    mutating func steps(for fields: Fields, operations: [RemapTransform.Operation]) -> Range<Int>? {
        let (found, steps) = names.withUnsafeBufferPointer { names in
            plans.withUnsafeMutableBufferPointer { plans -> (Bool, Range<Int>?) in
                for index in plans.indices
                where fields.hasNames(UnsafeBufferPointer(rebasing: names[plans[index].names])) {
                    plans[index].served &+= 1
                    return (true, plans[index].steps)
                }
                return (false, nil)
            }
        }
        if found { return steps }
        if cooldown > 0 {
            cooldown -= 1
            return nil
        }
        let shape = fields.names
        let plan = (names: shape, steps: Self.steps(names: shape, operations: operations))
        let placed: Int
        if plans.count < Self.capacity {
            placed = plans.count
            worked.append(plan)
        } else {
            // The least used goes: a plan that keeps serving stays whatever else comes and goes.
            let dropped = plans.indices.min { plans[$0].served < plans[$1].served }!
            if plans[dropped].served < 2 {
                cooldown = nextCooldown
                nextCooldown = min(nextCooldown * 2, Self.maximumCooldown)
            } else {
                nextCooldown = 1
            }
            placed = dropped
            worked[dropped] = plan
        }
        var served = plans.map(\.served)
        if placed == served.count { served.append(1) } else { served[placed] = 1 }
        plans.removeAll(keepingCapacity: true)
        names.removeAll(keepingCapacity: true)
        self.steps.removeAll(keepingCapacity: true)
        for (index, plan) in worked.enumerated() {
            let namesRange = names.count..<(names.count + plan.names.count)
            names += plan.names
            var stepsRange: Range<Int>?
            if let list = plan.steps {
                stepsRange = self.steps.count..<(self.steps.count + list.count)
                self.steps += list
            }
            plans.append(Plan(names: namesRange, steps: stepsRange, served: served[index]))
        }
        return plans[placed].steps
    }

    /// Works out where each operation acts on records with `names`, following the names through the operations as
    /// ``Fields`` would change them (names compared as Swift strings, as its lookups do); nil when a plan does not
    /// describe what they do.
    static func steps(names: [String], operations: [RemapTransform.Operation]) -> [Step]? {
        var current = names
        var steps: [Step] = []
        for (operation, kind) in operations.enumerated() {
            switch kind {
            case .set(let name, _):
                let position = current.firstIndex(of: name)
                if position == nil { current.append(name) }
                steps.append(Step(kind: .set, operation: operation, position: position ?? -1))
            case .rename(let from, let to):
                guard from != to, let position = current.firstIndex(of: from) else { continue }
                // ``Fields/rename(_:to:)`` also drops the fields already called `to` and renames later fields called
                // `from`: positions move, which a plan does not follow.
                guard !current.contains(to), !current[(position + 1)...].contains(from) else {
                    return nil
                }
                current[position] = to
                steps.append(Step(kind: .rename, operation: operation, position: position))
            case .remove(let name):
                guard let position = current.firstIndex(of: name) else { continue }
                current.remove(at: position)
                steps.append(Step(kind: .remove, operation: operation, position: position))
            }
        }
        return steps
    }
}
