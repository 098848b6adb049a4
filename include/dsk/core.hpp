// The core of dsk: dtypes, extents, layouts, views, owning tensors, errors, dispatch, parallelism.
#pragma once

#include "dsk/core/backend.hpp"
#include "dsk/core/config.hpp"
#include "dsk/core/cpu_features.hpp"
#include "dsk/core/dispatch.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/extents.hpp"
#include "dsk/core/layout.hpp"
#include "dsk/core/packed_int4.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
