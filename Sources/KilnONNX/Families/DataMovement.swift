import KilnIR

extension NodeConversion {
    /// The ops that move, select or copy values.
    mutating func convertDataMovement(_ importer: inout Importer) throws -> (Op, [ValueID?])? {
        switch opType {
        case "Concat":
            try need(1)
            guard let axis = try a.int("axis") ?? (version < 4 ? 1 : nil) else { throw Unsupported(reason: "axis is required") }
            return (.concat(axis: axis), inputs)
        case "Split":
            try need(1)
            if version < 13 { try attributeAsInput("split", at: 1, &importer) }
            if version >= 18, let n = try a.int("num_outputs"), n != outputs {
                throw Unsupported(reason: "num_outputs=\(n) but the node has \(outputs) outputs")
            }
            return (.split(axis: try a.int("axis", default: 0)), inputs)
        case "Slice":
            try need(1)
            if version < 10 {
                try attributeAsInput("starts", at: 1, &importer)
                try attributeAsInput("ends", at: 2, &importer)
                try attributeAsInput("axes", at: 3, &importer)
            }
            try need(3)
            return (.slice, inputs)
        case "Reshape":
            try need(1)
            a.ignore("consumed_inputs")
            if version < 5 { try attributeAsInput("shape", at: 1, &importer) }
            try need(2)
            return (.reshape(allowZero: try a.bool("allowzero", default: false)), inputs)
        case "Flatten":
            try need(1)
            return (.flatten(axis: try a.int("axis", default: 1)), inputs)
        case "Transpose":
            try need(1)
            return (.transpose(perm: try a.ints("perm")), inputs)
        case "Squeeze":
            try need(1)
            if version < 13 { try attributeAsInput("axes", at: 1, &importer) }
            return (.squeeze, inputs)
        case "Unsqueeze":
            try need(1)
            if version < 13 { try attributeAsInput("axes", at: 1, &importer) }
            try need(2)
            return (.unsqueeze, inputs)
        case "Gather":
            try need(2)
            return (.gather(axis: try a.int("axis", default: 0)), inputs)
        case "GatherElements":
            try need(2)
            return (.gatherElements(axis: try a.int("axis", default: 0)), Array(inputs.prefix(2)))
        case "DepthToSpace", "SpaceToDepth":
            try need(1)
            guard let b = try a.int("blocksize") else { throw Unsupported(reason: "attribute 'blocksize' is required") }
            let mode = try a.string("mode", default: "DCR")
            guard mode == "DCR" || mode == "CRD" else { throw Unsupported(reason: "mode '\(mode)' is not supported") }
            return (opType == "DepthToSpace" ? .depthToSpace(blockSize: b, crd: mode == "CRD") : .spaceToDepth(blockSize: b, crd: mode == "CRD"), inputs)
        case "Tile":
            guard version >= 6 else { throw Unsupported(reason: "Tile-1 (tiles and axis inputs) is not supported") }
            try need(2)
            return (.tile, Array(inputs.prefix(2)))
        case "Expand":
            try need(2)
            return (.expand, inputs)
        case "Identity":
            try need(1)
            return (.identity, inputs)
        case "Dropout":
            try need(1)
            a.ignore("is_test", "seed", "ratio", "consumed_inputs")
            return (.dropout, inputs)
        case "Pad":
            try need(1)
            let modeName = try a.string("mode", default: "constant")
            guard let mode = PadMode(rawValue: modeName) else { throw Unsupported(reason: "mode '\(modeName)' is not supported") }
            if version < 11 {
                guard let pads = try a.int64s("pads") ?? a.int64s("paddings") else { throw Unsupported(reason: "pads is required") }
                let value = try a.float("value", default: 0)
                inputs = [inputs[0], importer.constant("\(name)_pads", .vector(ints: pads)), importer.constant("\(name)_value", .scalar(value))]
            }
            try need(2)
            return (.pad(mode: mode), inputs)
        case "Resize":
            try need(1)
            let r = try resizeAttributes()
            return (.resize(r), inputs)
        default:
            return nil
        }
    }

    /// Resize's attributes; Resize-10's operands (X, scales) move to their places in Resize-11's.
    private mutating func resizeAttributes() throws -> ResizeAttributes {
        var r = ResizeAttributes()
        let mode = try a.string("mode", default: "nearest")
        guard let m = ResizeAttributes.Mode(rawValue: mode) else { throw Unsupported(reason: "mode '\(mode)' is not supported (nearest and linear are)") }
        r.mode = m
        if version < 11 {
            // Resize-10: X, scales; asymmetric coordinates, nearest rounds down.
            r.coordinateTransformation = .asymmetric
            r.nearestMode = .floor
            inputs = [inputs[0], nil, inputs.count > 1 ? inputs[1] : nil]
            return r
        }
        let ct = try a.string("coordinate_transformation_mode", default: "half_pixel")
        guard let c = ResizeAttributes.CoordinateTransformation(rawValue: ct) else {
            throw Unsupported(reason: "coordinate_transformation_mode '\(ct)' is not supported")
        }
        r.coordinateTransformation = c
        let nm = try a.string("nearest_mode", default: "round_prefer_floor")
        guard let n = ResizeAttributes.NearestMode(rawValue: nm) else { throw Unsupported(reason: "nearest_mode '\(nm)' is not supported") }
        r.nearestMode = n
        a.ignore("cubic_coeff_a")
        r.excludeOutside = try a.bool("exclude_outside", default: false)
        r.extrapolationValue = try a.float("extrapolation_value", default: 0)
        if try a.int("antialias", default: 0) != 0 { throw Unsupported(reason: "antialias=1 is not supported") }
        r.axes = try a.ints("axes")
        let kp = try a.string("keep_aspect_ratio_policy", default: "stretch")
        guard let p = ResizeAttributes.AspectRatioPolicy(rawValue: kp) else { throw Unsupported(reason: "keep_aspect_ratio_policy '\(kp)' is not supported") }
        r.keepAspectRatioPolicy = p
        return r
    }
}
