// kin::Error — the one error type of kin.
//
// Every failure that crosses a module boundary is a kin::Error (thrown as an
// exception). Its Code maps one-to-one onto an HTTP status and a Kubernetes
// `Status` reason, so the API server can turn any error into the Status body
// real clients expect. Invalid errors carry one Cause per offending field.
//
// ErrnoError() is the single place that turns errno into an error with
// context, the way crun does: ErrnoError(EEXIST, "create veth `kin-a1`")
// reads "create veth `kin-a1`: File exists".
//
// Thread-safety: plain value type.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kin {

enum class Code {
  kBadRequest,             // 400 BadRequest
  kUnauthorized,           // 401 Unauthorized
  kForbidden,              // 403 Forbidden
  kNotFound,               // 404 NotFound
  kMethodNotAllowed,       // 405 MethodNotAllowed
  kNotAcceptable,          // 406 NotAcceptable
  kAlreadyExists,          // 409 AlreadyExists
  kConflict,               // 409 Conflict
  kGone,                   // 410 Gone (a watch's resourceVersion was compacted)
  kRequestEntityTooLarge,  // 413 RequestEntityTooLarge
  kUnsupportedMediaType,   // 415 UnsupportedMediaType
  kInvalid,                // 422 Invalid
  kTooManyRequests,        // 429 TooManyRequests
  kInternal,               // 500 InternalError
  kServiceUnavailable,     // 503 ServiceUnavailable
  kTimeout,                // 504 Timeout
};

// One field-level problem of an Invalid error, as in metav1.StatusCause.
struct Cause {
  std::string reason;   // e.g. "FieldValueRequired"
  std::string message;  // e.g. "Required value"
  std::string field;    // e.g. "spec.containers[0].name"
};

class Error : public std::runtime_error {
 public:
  Error(Code code, std::string message);

  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  int http_status() const;
  std::string_view reason() const;  // the Kubernetes Status reason
  int sys_errno() const { return errno_; }

  // Details for the Kubernetes Status (kind is the resource, e.g. "pods").
  const std::string& details_name() const { return name_; }
  const std::string& details_kind() const { return kind_; }
  const std::string& details_group() const { return group_; }
  const std::vector<Cause>& causes() const { return causes_; }
  Error& WithDetails(std::string kind, std::string name, std::string group = "");
  Error& WithCause(Cause cause);
  Error& WithErrno(int e) {
    errno_ = e;
    return *this;
  }

  static Error BadRequest(std::string msg) { return Error(Code::kBadRequest, std::move(msg)); }
  static Error Unauthorized(std::string msg) { return Error(Code::kUnauthorized, std::move(msg)); }
  static Error Forbidden(std::string msg) { return Error(Code::kForbidden, std::move(msg)); }
  static Error NotFound(std::string msg) { return Error(Code::kNotFound, std::move(msg)); }
  static Error MethodNotAllowed(std::string msg) {
    return Error(Code::kMethodNotAllowed, std::move(msg));
  }
  static Error NotAcceptable(std::string msg) {
    return Error(Code::kNotAcceptable, std::move(msg));
  }
  static Error AlreadyExists(std::string msg) {
    return Error(Code::kAlreadyExists, std::move(msg));
  }
  static Error Conflict(std::string msg) { return Error(Code::kConflict, std::move(msg)); }
  static Error Gone(std::string msg) { return Error(Code::kGone, std::move(msg)); }
  static Error TooLarge(std::string msg) {
    return Error(Code::kRequestEntityTooLarge, std::move(msg));
  }
  static Error UnsupportedMediaType(std::string msg) {
    return Error(Code::kUnsupportedMediaType, std::move(msg));
  }
  static Error Invalid(std::string msg) { return Error(Code::kInvalid, std::move(msg)); }
  static Error Internal(std::string msg) { return Error(Code::kInternal, std::move(msg)); }
  static Error Unavailable(std::string msg) {
    return Error(Code::kServiceUnavailable, std::move(msg));
  }
  static Error Timeout(std::string msg) { return Error(Code::kTimeout, std::move(msg)); }

 private:
  Code code_;
  std::string message_;
  int errno_ = 0;
  std::string kind_, name_, group_;
  std::vector<Cause> causes_;
};

// "context: strerror(err)", code chosen from the errno (ENOENT -> NotFound,
// EEXIST -> AlreadyExists, EACCES/EPERM -> Forbidden, else Internal).
Error ErrnoError(int err, std::string_view context);

// Throws ErrnoError(errno, context) when rc < 0; returns rc otherwise.
long CheckSys(long rc, std::string_view context);

// What a client makes of an API answer: the code of an HTTP status
// (unknown 4xx: BadRequest, else Internal), and of a Status reason
// ("NotFound"; "Expired" is Gone); nullopt for a reason kin does not know.
Code CodeFromHttpStatus(int status);
std::optional<Code> CodeFromReason(std::string_view reason);

}  // namespace kin
