// src/capi/capi_common.cpp — thread-local last-error string behind the C API.
#include "turboquant/capi_common.h"

namespace {
thread_local std::string g_last_error;
}

namespace tq::capi {
void set_last_error(const std::string& msg) { g_last_error = msg; }
}  // namespace tq::capi

extern "C" {
const char* tq_last_error(void) { return g_last_error.c_str(); }
const char* tq_status_name(tq_status s) {
  switch (s) {
    case TQ_OK: return "ok";
    case TQ_INVALID_ARGUMENT: return "invalid argument";
    case TQ_OUT_OF_RANGE: return "out of range";
    case TQ_OUT_OF_MEMORY: return "out of memory";
    case TQ_IO_ERROR: return "io error";
    case TQ_UNSUPPORTED: return "unsupported";
    case TQ_INTERNAL: return "internal error";
  }
  return "unknown status";
}
}
