/* turboquant/capi_common.h — what every part of the C API shares: status codes, the last-error
 * string, the export macro. Plain C; usable from Python ctypes. Each subsystem has its own header
 * (turboquant.h: codecs, KV cache, attention; turboquant_index.h; turboquant_cuda.h), all built on this. */
#ifndef TURBOQUANT_CAPI_COMMON_H
#define TURBOQUANT_CAPI_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TQ_API __attribute__((visibility("default")))

/* Same values as tq::Status in turboquant/error.h. */
typedef enum tq_status {
  TQ_OK = 0,
  TQ_INVALID_ARGUMENT = 1,
  TQ_OUT_OF_RANGE = 2,
  TQ_OUT_OF_MEMORY = 3,
  TQ_IO_ERROR = 4,
  TQ_UNSUPPORTED = 5,
  TQ_INTERNAL = 6
} tq_status;

/* Message of the last failed call on this thread ("" if none). Valid until the next call. */
TQ_API const char* tq_last_error(void);
TQ_API const char* tq_status_name(tq_status s);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#ifdef __cplusplus
#include <exception>
#include <new>
#include <string>

#include "turboquant/error.h"

namespace tq::capi {
void set_last_error(const std::string& msg);
// Runs f; converts any exception into a status and the thread's last-error message. Never throws.
template <typename F>
tq_status guard(F&& f) noexcept {
  try {
    set_last_error("");
    f();
    return TQ_OK;
  } catch (const tq::Error& e) {
    set_last_error(e.what());
    return static_cast<tq_status>(e.status());
  } catch (const std::bad_alloc&) {
    set_last_error("out of memory");
    return TQ_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(e.what());
    return TQ_INTERNAL;
  } catch (...) {
    set_last_error("unknown error");
    return TQ_INTERNAL;
  }
}
}  // namespace tq::capi
#endif

#endif /* TURBOQUANT_CAPI_COMMON_H */
