#include "base/error.h"

#include <cerrno>
#include <cstring>

namespace kin {

Error::Error(Code code, std::string message)
    : std::runtime_error(message), code_(code), message_(std::move(message)) {}

int Error::http_status() const {
  switch (code_) {
    case Code::kBadRequest:
      return 400;
    case Code::kUnauthorized:
      return 401;
    case Code::kForbidden:
      return 403;
    case Code::kNotFound:
      return 404;
    case Code::kMethodNotAllowed:
      return 405;
    case Code::kNotAcceptable:
      return 406;
    case Code::kAlreadyExists:
      return 409;
    case Code::kConflict:
      return 409;
    case Code::kGone:
      return 410;
    case Code::kRequestEntityTooLarge:
      return 413;
    case Code::kUnsupportedMediaType:
      return 415;
    case Code::kInvalid:
      return 422;
    case Code::kTooManyRequests:
      return 429;
    case Code::kInternal:
      return 500;
    case Code::kServiceUnavailable:
      return 503;
    case Code::kTimeout:
      return 504;
  }
  return 500;
}

std::string_view Error::reason() const {
  switch (code_) {
    case Code::kBadRequest:
      return "BadRequest";
    case Code::kUnauthorized:
      return "Unauthorized";
    case Code::kForbidden:
      return "Forbidden";
    case Code::kNotFound:
      return "NotFound";
    case Code::kMethodNotAllowed:
      return "MethodNotAllowed";
    case Code::kNotAcceptable:
      return "NotAcceptable";
    case Code::kAlreadyExists:
      return "AlreadyExists";
    case Code::kConflict:
      return "Conflict";
    case Code::kGone:
      return "Expired";
    case Code::kRequestEntityTooLarge:
      return "RequestEntityTooLarge";
    case Code::kUnsupportedMediaType:
      return "UnsupportedMediaType";
    case Code::kInvalid:
      return "Invalid";
    case Code::kTooManyRequests:
      return "TooManyRequests";
    case Code::kInternal:
      return "InternalError";
    case Code::kServiceUnavailable:
      return "ServiceUnavailable";
    case Code::kTimeout:
      return "Timeout";
  }
  return "InternalError";
}

Error& Error::WithDetails(std::string kind, std::string name, std::string group) {
  kind_ = std::move(kind);
  name_ = std::move(name);
  group_ = std::move(group);
  return *this;
}

Error& Error::WithCause(Cause cause) {
  causes_.push_back(std::move(cause));
  return *this;
}

Error ErrnoError(int err, std::string_view context) {
  Code code = Code::kInternal;
  switch (err) {
    case ENOENT:
      code = Code::kNotFound;
      break;
    case EEXIST:
      code = Code::kAlreadyExists;
      break;
    case EACCES:
    case EPERM:
      code = Code::kForbidden;
      break;
    case EINVAL:
      code = Code::kBadRequest;
      break;
    case ETIMEDOUT:
      code = Code::kTimeout;
      break;
    default:
      break;
  }
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  Error e(code, std::move(msg));
  e.WithErrno(err);
  return e;
}

long CheckSys(long rc, std::string_view context) {
  if (rc < 0) throw ErrnoError(errno, context);
  return rc;
}

Code CodeFromHttpStatus(int status) {
  switch (status) {
    case 400:
      return Code::kBadRequest;
    case 401:
      return Code::kUnauthorized;
    case 403:
      return Code::kForbidden;
    case 404:
      return Code::kNotFound;
    case 405:
      return Code::kMethodNotAllowed;
    case 406:
      return Code::kNotAcceptable;
    case 409:
      return Code::kConflict;
    case 410:
      return Code::kGone;
    case 413:
      return Code::kRequestEntityTooLarge;
    case 415:
      return Code::kUnsupportedMediaType;
    case 422:
      return Code::kInvalid;
    case 429:
      return Code::kTooManyRequests;
    case 503:
      return Code::kServiceUnavailable;
    case 504:
      return Code::kTimeout;
    default:
      break;
  }
  if (status >= 400 && status < 500) return Code::kBadRequest;
  return Code::kInternal;
}

std::optional<Code> CodeFromReason(std::string_view reason) {
  static const std::pair<const char*, Code> kReasons[] = {
      {"BadRequest", Code::kBadRequest},
      {"Unauthorized", Code::kUnauthorized},
      {"Forbidden", Code::kForbidden},
      {"NotFound", Code::kNotFound},
      {"MethodNotAllowed", Code::kMethodNotAllowed},
      {"NotAcceptable", Code::kNotAcceptable},
      {"AlreadyExists", Code::kAlreadyExists},
      {"Conflict", Code::kConflict},
      {"Gone", Code::kGone},
      {"Expired", Code::kGone},
      {"RequestEntityTooLarge", Code::kRequestEntityTooLarge},
      {"UnsupportedMediaType", Code::kUnsupportedMediaType},
      {"Invalid", Code::kInvalid},
      {"TooManyRequests", Code::kTooManyRequests},
      {"InternalError", Code::kInternal},
      {"ServiceUnavailable", Code::kServiceUnavailable},
      {"Timeout", Code::kTimeout},
      {"ServerTimeout", Code::kTimeout},
  };
  for (const auto& [name, code] : kReasons) {
    if (reason == name) return code;
  }
  return std::nullopt;
}

}  // namespace kin
