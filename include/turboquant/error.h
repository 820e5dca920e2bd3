// turboquant/error.h — the one exception type of the library and the checks that throw it.
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace tq {

// Every error the C++ API reports is a tq::Error. The C API turns it into a status + message.
enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,  // bad shape, stride, dtype, codec string, NaN input, ...
  kOutOfRange = 2,       // index / sequence id / block table out of range
  kOutOfMemory = 3,      // block pool exhausted, allocation failed
  kIoError = 4,          // file missing, truncated, corrupted
  kUnsupported = 5,      // combination the selected backend does not implement (fails at plan time)
  kInternal = 6,
};

class Error : public std::runtime_error {
 public:
  Error(Status s, const std::string& msg) : std::runtime_error(msg), status_(s) {}
  Status status() const noexcept { return status_; }

 private:
  Status status_;
};

}  // namespace tq

// TQ_CHECK(cond, status, fmt, args...) — throws tq::Error with the formatted message when !cond.
#define TQ_CHECK(cond, status, ...)                                              \
  do {                                                                           \
    if (!(cond)) throw ::tq::Error(::tq::Status::status, ::fmt::format(__VA_ARGS__)); \
  } while (0)
#define TQ_CHECK_ARG(cond, ...) TQ_CHECK(cond, kInvalidArgument, __VA_ARGS__)
#define TQ_FAIL(status, ...) throw ::tq::Error(::tq::Status::status, ::fmt::format(__VA_ARGS__))
