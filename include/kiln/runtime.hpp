// Kiln's C++ runtime: the generic kernels that generated model code calls, one header per kernel
// family on a shared core (element types, strided iteration, vectorized exp). Compiled into
// every generated library (header-only, internal linkage); never seen by consumers.
#pragma once

#include "core.hpp"
#include "elementwise.hpp"
#include "data_movement.hpp"
#include "compute.hpp"
#include "recurrent.hpp"
